"""`mlxprof decode --ranks N`: its options, its glue, its terminal table."""

import click

from ..errors import InputError
from . import PARALLEL

RANKS_HELP = (
    "Decode sharded over N processes on this host, one per GPU on CUDA (NCCL), N on the CPU (MLX's ring "
    "backend), against the same model on one device in the same command; or, started by mlx.launch, this "
    "process is one rank of its group. Per rank: tok/s, build/submit/wait, peak memory; collectives per "
    "token; straggler spread; speedup and efficiency (speedup / N, 95% CI). Verdict, first match: "
    "communication-bound when collectives take >= 30% of a token (NCCL kernel time with --gpu-timeline, "
    "else the device time beyond one device's share); compute-bound on the CPU backend; host-bound per "
    "rank when most ranks' decode verdict is host-bound; GPU-bound when all are GPU-bound; else mixed."
)


def options(f):
    """--ranks / --parallel / --port, declared once for `decode`."""
    f = click.option("--port", type=int, default=None,
                     help="First TCP port of the ranks on 127.0.0.1 [ring: 32323 and up, one per rank; "
                          "NCCL: 12345], as mlx.launch's defaults.")(f)
    f = click.option("--parallel", type=click.Choice(PARALLEL), default=None,
                     help="With --ranks: tensor (model.shard: every layer split N ways; an all_sum where the shards meet, twice per "
                          "Llama layer) or pipeline (model.model.pipeline: layers split into N stages) "
                          "[default tensor].")(f)
    return click.option("--ranks", type=int, default=None, help=RANKS_HELP)(f)


def requested(params: dict) -> bool:
    from .launch import joined

    return any(params.get(k) is not None for k in ("ranks", "parallel", "port")) or joined()


def from_cli(params: dict, command: str):
    """The library call for `mlxprof decode` given --ranks (or under mlx.launch);
    None on ranks other than 0 of an mlx.launch run."""
    from ..cli_options import file_path
    from . import launch
    from .drive import decode

    for opt in ("image", "image_size"):
        if params.get(opt) is not None:
            raise InputError(f"--{opt.replace('_', '-')} with --ranks: image prompts are measured on one device "
                             "only (mlxprof decode --image …)")
    ranks = params.get("ranks")
    if ranks is None:
        if not launch.joined():
            raise InputError("--parallel and --port need --ranks N")
        ranks = launch.joined_size()
    env = None
    if params.get("env"):
        from ..subproc import parse_env

        env = parse_env(params["env"])
    return decode(
        params["model"], ranks=ranks, parallel=params.get("parallel") or "tensor", weights=params["weights"],
        dtype=params["dtype"], runs=params["runs"], warmup=params["warmup"], tokens=params["tokens"],
        prompt_tokens=params["prompt_tokens"], prompt=params["prompt"], port=params.get("port"), env=env,
        gpu_timeline=params["gpu_timeline"], trace_path=params["trace_path"],
        json_path=file_path(params["json_path"]), progress=not params["quiet"], command=command,
    )


def _ms(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def _collectives_line(c) -> str:
    from ..render import fmt_bytes

    if not c.ops:
        return "none"
    ops = ", ".join(f"{o.calls} {o.op} × {tuple(o.shape)} {o.dtype} ({fmt_bytes(o.bytes)})" for o in c.ops)
    check = "matches the graph" if c.matches_graph else f"graph has {c.graph}"
    return f"{c.calls_per_token} calls, {fmt_bytes(c.bytes_per_token)} per token: {ops} ({check})"


def _rank_rows(t, r, head: str):
    from ..render import fmt_bytes

    s = r.split
    t.add_row(head, f"{r.tok_s.median:.2f} tok/s median (best {r.tok_s.best:.2f}, n={r.tok_s.n});  per token "
                    f"{_ms(s.token_ms)} ms: build {_ms(s.build_ms)}  submit {_ms(s.submit_ms)}  wait "
                    f"{_ms(s.wait_ms)};  peak memory {fmt_bytes(r.peak_memory_bytes)}, weights held "
                    f"{fmt_bytes(r.weight_bytes)};  {r.verdict.label}")
    if r.comm is not None:
        t.add_row("", f"NCCL kernels {r.comm.ms_per_token.median:.3f} ms per token ({r.comm.share:.0%} of a "
                      f"traced token), {r.comm.kernels_per_token:.0f} kernels")
    if r.gpu is not None:
        t.add_row("", f"GPU busy {r.gpu.busy_fraction:.0%}, {r.gpu.gpu_ms_per_token.median:.2f} ms per token")


def distributed_table(r, console=None):
    from ..render import _kv_table, fmt_params, stdout_console

    console = console or stdout_console()
    p, m, st, li = r.provenance, r.model, r.settings, r.launch
    t = _kv_table(f"mlxprof decode — {m.name} on {li.ranks} ranks, {r.parallel} parallel")
    t.add_row("model", f"{m.name} ({m.quantization}, {m.num_layers} layers, {fmt_params(m.parameters)} params), "
                       f"{m.weights} weights")
    t.add_row("backend / chip", f"{p.backend} / {p.chip}")
    added = " ".join(f"{k}={v}" for k, v in li.env_added.items())
    t.add_row("launch", f"{li.mode}: {li.ranks} ranks over {li.backend} on {li.host}"
                        + (f", ports {', '.join(map(str, li.ports))}" if li.ports else "")
                        + (f"; added {added}" if added else ""))
    t.add_row("tokens", f"{st.runs} runs × ({st.prompt_tokens} prompt, {st.warmup} warm-up, {st.tokens} "
                        "measured), every rank in lockstep")
    ts = r.tok_s
    t.add_row("tok/s", f"best {ts.best:.2f}   median {ts.median:.2f} ± {ts.mad:.2f} MAD (n={ts.n}; per run, "
                       "the slowest rank)")
    if r.scaling is not None:
        sc = r.scaling
        t.add_row("scaling", f"×{sc.speedup:.3f} one device ({r.baseline.tok_s.median:.2f} tok/s): efficiency "
                             f"{sc.efficiency:.0%} (95% CI {sc.efficiency_ci[0]:.0%}–{sc.efficiency_ci[1]:.0%}; "
                             f"{sc.comparison.verdict})")
        _rank_rows(t, r.baseline, "one device")
    for rk in r.ranks:
        _rank_rows(t, rk, f"rank {rk.rank}")
    for rk in r.ranks:
        if rk.rank == 0 or rk.collectives != r.ranks[0].collectives:
            t.add_row(f"collectives r{rk.rank}", _collectives_line(rk.collectives))
    sg = r.straggler
    skew = (f"; tokens arrive {sg.skew_ms.median:.3f} ms apart (median, max {sg.skew_ms.max:.3f}), last: "
            + ", ".join(f"rank {k} {v:.0%}" for k, v in sg.last_share.items())) if sg.skew_ms else ""
    t.add_row("straggler", f"tok/s spread {sg.spread_tok_s:.2f} ({sg.spread_share:.1%}), slowest rank "
                           f"{sg.slowest_rank}{skew}")
    t.add_row("verdict", r.verdict.sentence)
    if not r.tokens_agree:
        t.add_row("note", "ranks decoded different token ids: the shards do not agree")
    for note in st.reduced + r.launch.notes + r.notes:
        t.add_row("note", note)
    console.print(t)
