"""Markdown for a decode-profile document, from saved result dicts alone.

Pure rendering: no measuring, no files. A document has a provenance table,
the headline, the pipeline split with its verdict, one section per result
kind that was measured (ops, floor, sweep, vlm, compare, decode across
ranks, parity, GPU timeline), then the commands that reproduce every table (built by
`reproduce.py`) and where the numbers came from.
"""

from typing import Callable, Dict, List, Optional

from ..errors import InputError
from ..render import fmt_bytes as _gb

SECTIONS: Dict[str, Callable] = {}  # kind → renderer(data, ctx) → markdown
ORDER = ["decode", "gpu", "floor", "depth", "ops", "sweep", "vlm", "compare", "distributed", "parity"]


def section(kind):
    def deco(fn):
        SECTIONS[kind] = fn
        return fn

    return deco


def _gbs(x):
    return f"{x:.0f} GB/s" if x >= 100 else f"{x:.2g} GB/s"


def _table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def provenance_table(d: dict) -> str:
    p = d["provenance"]
    m = d.get("model") or {}
    v = p["versions"]
    rows = [
        ["chip", p["chip"]],
        ["backend", p["backend"]],
        ["device_info", ", ".join(f"{k}={val}" for k, val in p["device"].items())],
        ["MLX / mlx-lm / mlx-vlm", f"{v.get('mlx')} / {v.get('mlx-lm')} / {v.get('mlx-vlm')}"],
        ["mlxprof", str(v.get("mlxprof"))],
        ["model", f"{m.get('name')} ({m.get('quantization')}, {m.get('num_layers')} layers)"],
        ["weights", "**synthetic** (published architecture, random values)" if m.get("weights") == "synthetic"
         else f"real ({m.get('path') or m.get('repo_id')})"],
        ["dtype", str(m.get("dtype"))],
        ["knobs in force", ", ".join(f"{k}={val}" for k, val in p["knobs"].items()) or "none"],
        ["python / platform", f"{p['python']} / {p['platform']}"],
        ["date", p["date"]],
    ]
    return _table(["", ""], rows)


@section("decode")
def decode_section(d, ctx):
    s, ts, st = d["split"], d["tok_s"], d["settings"]
    lines = ["## Decode speed", ""]
    lines.append(
        f"**{ts['median']:.2f} tok/s median** (best {ts['best']:.2f}, MAD {ts['mad']:.2f}, "
        f"σ {ts['stdev']:.2f}, n = {ts['n']}); samples: " + ", ".join(f"{x:.2f}" for x in ts["samples"]) + "."
    )
    lines.append("")
    lines.append(
        f"Each run: fresh cache, {st['prompt_tokens']}-token prompt, {st['warmup']} warm-up tokens, "
        f"{st['tokens']} measured tokens, greedy; tok/s = (tokens − 1) / (t_last − t_first). "
        f"Prefill: {d['prefill_tok_s']['median']:.1f} tok/s median. Peak memory {_gb(d['peak_memory_bytes'])}."
    )
    if d.get("cold_start"):
        from ..coldstart import ColdStart, describe

        lines.append(f"\n> Cold start: {describe(ColdStart.model_validate(d['cold_start']))}. The measured runs "
                     "follow a discarded priming run (prefill + 2 tokens) that absorbs first-run compilation.")
    for note in st.get("reduced", []) + [n for n in d.get("notes", []) if n.startswith("partial")]:
        lines.append(f"\n> {note}")
    lines += ["", "## Where each token's time goes", ""]
    tok = s["token_ms"]
    rows = [[ph, f"{s[ph + '_ms']:.3f}", f"{s[ph + '_ms'] / tok:.0%}" if tok else "–"]
            for ph in ("build", "submit", "wait")]
    rows.append(["unattributed", f"{s['unattributed_ms']:.3f}", f"{s['unattributed_ms'] / tok:.0%}" if tok else "–"])
    rows.append(["**token**", f"**{tok:.3f}**", "100%"])
    lines.append(_table(["phase", "median ms", "share"], rows))
    lines += ["", f"**Verdict: {d['verdict']['label']}.** {d['verdict']['sentence']}", ""]
    mb = d["model"]["bytes_per_token"]
    lines.append(f"Weights streamed per token: {_gb(mb)} → {mb / (tok / 1e3) / 1e9:.1f} GB/s effective at the median token time.")
    if d.get("kv_bytes_per_token") is not None:
        lines.append(f"KV cache read per token at context {d['kv_context']}: {_gb(d['kv_bytes_per_token'])} "
                     "(sliding-window and KV-shared layers accounted).")
    if ctx["plots"].get("decode"):
        lines += ["", f"![per-token latency]({ctx['plots']['decode']})"]
    return "\n".join(lines)


@section("gpu")
def gpu_section(g, ctx):
    lines = ["## The GPU's own timeline (CUPTI)", ""]
    tiers = g.get("tiers") or []
    if not tiers:  # saved before traced runs came in kinds: one kernel-level set behind every figure
        lines.append(
            f"GPU busy **{g['busy_fraction']:.0%}** of the measured wall time (union of kernel intervals, "
            f"{g['runs']} traced runs); GPU {g['gpu_ms_per_token']['median']:.2f} ms per token busy, "
            f"{g['kernels_per_token']:.0f} kernels per token, {g['graph_kernel_share']:.0%} launched from CUDA graphs."
        )
        if g.get("overhead"):
            o = g["overhead"]
            lines.append(f"\nTracing cost: traced vs untraced tok/s ×{o['ratio']:.3f} "
                         f"(95% CI {o['ci_low']:.3f}–{o['ci_high']:.3f}; {o['verdict']}).")
    else:
        lines += _gpu_tier_lines(g, tiers)
    lines += ["", _table(["primitive", "kernels/token", "ms/token", "share of kernel time"],
                         [[p["primitive"], f"{p['count_per_token']:.0f}", f"{p['ms_per_token']:.3f}",
                           f"{p['share']:.0%}"] for p in g["by_primitive"][:10]])]
    top = g["top_kernels"][:10]
    if top:
        keys = [k for k in ("name", "primitive", "count_per_token", "ms_per_token") if k in top[0]]
        lines += ["", "Top kernels by total time:", "",
                  _table(keys, [[(f"{k[c]:.3f}" if isinstance(k[c], float) else str(k[c])[:60]) for c in keys]
                                for k in top])]
    if g.get("method"):
        lines += ["", f"_{g['method']}_"]
    return "\n".join(lines)


def _gpu_tier_lines(g, tiers) -> List[str]:
    """Which runs gave which figure, and what each kind of traced run cost."""
    graph = g.get("busy_level") == "graph"
    union = ("CUDA graph executions: graph-level records, one per graph launch" if graph
             else "kernel intervals")
    launches = (f", {g['graphs_per_token']:.1f} CUDA graph launches per token"
                if g.get("graphs_per_token") is not None else "")
    where = (f"of the measured wall time (union of {union}; {g['runs']} {'graph' if graph else 'kernel'}-traced "
             f"runs interleaved with the untraced ones); GPU {g['gpu_ms_per_token']['median']:.2f} ms per token "
             f"busy{launches}")
    nv = g.get("nvml") or {}
    if nv.get("busy_fraction") is not None:
        same = g.get("nvml_traced") or {}
        same = (f"; NVML read {same['busy_fraction']:.0%} on those same runs"
                if same.get("busy_fraction") is not None else "")
        out = [f"GPU busy **{nv['busy_fraction']:.0%}** of the measured wall time over the {nv['runs']} untraced "
               f"runs, from NVML's utilization samples ({nv['samples']} whole periods of ~{nv['period_ms']:.0f} ms "
               f"inside the measured tokens, {nv['coverage']:.0%} of them), read between runs: it costs the "
               "runs it describes nothing. The verdict's GPU share is this busy fraction.",
               f"\nCUPTI's busy: {g['busy_fraction']:.0%} {where}{same}."]
    else:
        out = [f"GPU busy **{g['busy_fraction']:.0%}** {where}. The verdict's GPU share is this busy fraction."]
    n = g.get("table_runs") or g["runs"]
    cross = (f"; kernel-level busy {g['kernel_busy_fraction']:.0%} in {'that run' if n == 1 else 'those runs'}"
             if g.get("kernel_busy_fraction") is not None else "")
    out.append(f"\nKernel table from {n} {g.get('table_level', 'kernel')}-traced run{'s' if n != 1 else ''} "
               f"(every kernel recorded): {g['kernels_per_token']:.0f} kernels per token, "
               f"{g['graph_kernel_share']:.0%} launched from CUDA graphs{cross}.")
    rows = []
    if nv.get("busy_fraction") is not None:
        rows.append(["untraced", "NVML samples, read between runs", str(nv["runs"]), "–",
                     "×1: nothing enabled while they run", "busy fraction, the verdict's GPU share"])
    for t in tiers:
        o = t.get("overhead")
        cost = (f"×{o['ratio']:.3f} ({o['ci_low']:.3f}–{o['ci_high']:.3f}; {o['verdict']})" if o else "–")
        rows.append([f"{t['name']}-traced", f"{t['level']}-level ({', '.join(t['kinds'])})", str(len(t["runs"])),
                     f"{t['tok_s']['median']:.2f}", cost, t["figures"]])
    out += ["", "Tracing cost: each kind of traced run against the untraced runs of the same process "
                "(interleaved), tok/s ratio with its 95% CI:", "",
            _table(["traced runs", "records", "runs", "tok/s median", "× untraced", "gave"], rows)]
    return out


@section("sweep")
def sweep_section(d, ctx):
    from .. import gating, hardware, render, sweep

    r = sweep.SweepResult.model_validate(d)
    lines = ["## Scheduler knob sweep", "", "Every point in a fresh process (MLX reads the buffer variables once, "
             "when its device is created), values interleaved round-robin.", "", render.sweep_markdown(r)]
    chip = hardware.detect(device_info=d["provenance"]["device"], backend=d["provenance"]["backend"])
    recs = gating.recommend(chip)
    lines += ["Gating table for this chip family "
              f"(`{chip.family}`):", "",
              _table(["knob", "recommended", "reason"],
                     [[x.knob, x.value or "MLX default", x.reason] for x in recs])]
    if ctx["plots"].get("sweep"):
        lines += ["", f"![sweep]({ctx['plots']['sweep']})"]
    return "\n".join(lines)


@section("vlm")
def vlm_section(d, ctx):
    b, v = d["breakdown"], d["vision"]
    rows = [[name, f"{st['median_s'] * 1e3:.2f}", f"{st['stdev_s'] * 1e3:.2f}", f"{st['max_dev_s'] * 1e3:.2f}",
             f"{st['share']:.0%}"] for name, st in b["stages"].items()]
    t = b["ttft"]
    rows.append(["**TTFT**", f"**{t['median_s'] * 1e3:.2f}**", f"{t['stdev_s'] * 1e3:.2f}",
                 f"{t['max_dev_s'] * 1e3:.2f}", "100%"])
    tr, ir = d["text"], d["image"]
    cmp_ = d["decode_comparison"]
    lines = [
        "## Image prompt: time to first token", "",
        f"Image {v.get('image_size')}×{v.get('image_size')} → {v.get('soft_tokens')} soft tokens; vision weights "
        f"{v.get('weights', 'synthetic')}. "
        f"{'Stages timed sequentially (mx.eval between stages)' if b['stages'] else b.get('note') or 'Fused TTFT'}, "
        f"{b['runs']} runs after {b['warmup']} warm-ups.", "",
        _table(["stage", "median ms", "stddev ms", "max dev ms", "share"], rows), "",
        "## Text vs image prompt", "",
        _table(["prompt", "tokens", "prefill tok/s", "TTFT ms", "decode tok/s"],
               [[r["prompt"], str(r["prompt_tokens"]), f"{r['prefill_tok_s']['median']:.1f}",
                 f"{r['ttft_s']['median'] * 1e3:.1f}", f"{r['tok_s']['median']:.2f} ± {r['tok_s']['mad']:.2f}"]
                for r in (tr, ir)]), "",
        f"Decode, image vs text: ×{cmp_['ratio']:.3f} (95% CI {cmp_['ci_low']:.3f}–{cmp_['ci_high']:.3f}): "
        f"{cmp_['verdict']}.",
    ]
    lines += [f"\n_note: {n}_" for n in d.get("notes", []) if "synthetic" not in n]
    return "\n".join(lines)


@section("ops")
def ops_section(d, ctx):
    lines = ["## What one decode token's graph holds", "",
             f"One decode step at KV context {d['context']} (exported with `mx.export_to_dot` before "
             f"evaluation): **{d['nodes']} nodes**" + (" (this step grows the KV cache)" if d["kv_growth"] else "")
             + ". By class: " + ", ".join(f"{k} {v}" for k, v in d["classes"].items()) + ".", ""]
    top = list(d["histogram"].items())[:15]
    lines.append(_table(["op", "count", "class"], [[op, str(n), d["op_class"].get(op, "")] for op, n in top]))
    for m in d["matvec"]:
        ok = "matches" if m["expected"] == m["found"] else "DIFFERS"
        lines.append(f"\nSanity: {m['op']} nodes on weights: expected {m['expected']} from the architecture, "
                     f"found {m['found']} ({ok}; {m['nodes']} {m['op']} nodes in all).")
    if d.get("compiled_inner"):
        lines.append("\nFused inside Compiled nodes: "
                     + ", ".join(f"{k} {v}" for k, v in list(d["compiled_inner"].items())[:10]) + ".")
    return "\n".join(lines)


@section("floor")
def floor_section(d, ctx):
    fm = d["floor_ms"]
    lines = ["## Weight-streaming floor", "",
             f"A graph of only the {d['matvecs']} matrix-vector products one token performs, over the weights it "
             f"streams ({_gb(d['bytes_per_token'])}), evaluated once per token: **{fm['median']:.3f} ms** "
             f"median (best {fm['best']:.3f}) → {_gbs(d['gb_s'])}, floor {d['floor_tok_s']:.0f} tok/s.", "",
             _table(["weights", "matvecs", "bytes"], [[g["kind"], str(g["matvecs"]), _gb(g["bytes"])] for g in d["groups"]])]
    if d.get("probe"):
        lines.append(f"\nDevice copy probe: {_gbs(d['probe']['gb_s'])} (read + write).")
    lines.append(f"\n**{d['sentence']}**")
    return "\n".join(lines)


@section("depth")
def depth_section(d, ctx):
    st = d["settings"]
    rows = [[str(x["depth"]), str(x["kv_context"]), _gb(x["kv_bytes_per_token"]),
             f"{x['tok_s']['median']:.2f} ± {x['tok_s']['mad']:.2f}", f"{x['tok_s']['best']:.2f}",
             f"{x['split']['token_ms']:.2f}",
             f"{x['floor_tok_s']:.1f}" if x.get("floor_tok_s") else "–",
             f"{x['floor_share']:.0%}" if x.get("floor_share") else "–",
             f"{x['fill_tok_s']['median']:.1f}", _gb(x["peak_memory_bytes"])] for x in d["points"]]
    lines = ["## Decode at depth", "",
             f"Each depth: {st['runs']} runs, each a fresh KV cache filled with the depth's tokens (chunks of "
             f"{st['prefill_step']}, not timed as decode), then {st['warmup']} warm-up and {st['tokens']} "
             "measured tokens. KV/token: the K and V one token reads at the middle measured context "
             "(sliding-window and KV-shared layers accounted).", "",
             _table(["depth", "KV context", "KV/token", "tok/s median ± MAD", "best", "token ms", "floor tok/s",
                     "of floor", "fill tok/s", "peak memory"], rows)]
    f = d.get("floor")
    if f:
        lines.append(f"\nFloor: weights {f['weights_ms']['median']:.3f} ms/token ({_gb(f['weight_bytes'])}), copy "
                     f"probe {_gbs(f['probe_gb_s'])}; {f['method']}.")
    lines.append(f"\n**{d['sentence']}**")
    said = [n for n in d.get("notes", []) if n.startswith(("partial", "CPU backend"))]
    lines += [f"\n> {n}" for n in st.get("reduced", []) + said]
    if ctx["plots"].get("depth"):
        lines += ["", f"![decode at depth]({ctx['plots']['depth']})"]
    return "\n".join(lines)


@section("compare")
def compare_section(d, ctx):
    rows = []
    for v in d["variants"]:
        sp = v["split"]
        rows.append([v["bits"], f"{v['tok_s']['median']:.2f} ± {v['tok_s']['mad']:.2f}", f"{v['tok_s']['best']:.2f}",
                     f"{sp['build_ms']:.2f} / {sp['submit_ms']:.2f} / {sp['wait_ms']:.2f}", _gb(v["bytes_per_token"]),
                     f"{v['floor_ms']['median']:.3f}" if v.get("floor_ms") else "–",
                     f"{v['floor_gb_s']:.0f}" if v.get("floor_gb_s") else "–", v["verdict"]["label"]])
    lines = ["## Bits comparison", "", f"Variants run {d['order']}.", "",
             _table(["weights", "tok/s median ± MAD", "best", "build / submit / wait ms", "bytes/token",
                     "floor ms", "GEMV GB/s", "verdict"], rows), ""]
    lines += [f"- {c['candidate']} vs {c['baseline']}: ×{c['ratio']:.3f} (95% CI {c['ci_low']:.3f}–{c['ci_high']:.3f}, "
              f"p = {c['p_value']:.3g}): {c['verdict']}" for c in d["comparisons"]]
    lines += ["", f"**{d['sentence']}**"]
    return "\n".join(lines)


def _rank_row(name, r):
    s, comm = r["split"], r.get("comm")
    return [name, f"{r['tok_s']['median']:.2f}", f"{s['build_ms']:.3f}", f"{s['submit_ms']:.3f}", f"{s['wait_ms']:.3f}",
            f"{s['token_ms']:.3f}", f"{comm['ms_per_token']['median']:.3f} ({comm['share']:.0%})" if comm else "–",
            _gb(r["peak_memory_bytes"]), _gb(r["weight_bytes"]), r["verdict"]["label"]]


@section("distributed")
def distributed_section(d, ctx):
    li, ts, n = d["launch"], d["tok_s"], len(d["ranks"])
    lines = [f"## Decode across {n} devices ({d['parallel']} parallel)", "",
             f"{li['mode']}: {n} ranks over mx.distributed's {li['backend']} backend on {li['host']}"
             + "".join(f"; {note}" for note in li.get("notes", [])) + ". Every rank decodes the same "
             f"{d['settings']['runs']} runs in lockstep; the group's tok/s per run is its slowest rank's: "
             f"**{ts['median']:.2f} tok/s median** (best {ts['best']:.2f}, n = {ts['n']})."]
    sc = d.get("scaling")
    if sc:
        c = sc["comparison"]
        lines.append(f"\nOne device, unsharded, same command: {d['baseline']['tok_s']['median']:.2f} tok/s. Speedup "
                     f"×{sc['speedup']:.3f} (95% CI {c['ci_low']:.3f}–{c['ci_high']:.3f}, {c['verdict']}); "
                     f"efficiency (speedup / {n}) **{sc['efficiency']:.0%}** (95% CI {sc['efficiency_ci'][0]:.0%}–"
                     f"{sc['efficiency_ci'][1]:.0%}).")
    rows = ([_rank_row("one device", d["baseline"])] if d.get("baseline") else []) + \
        [_rank_row(f"rank {r['rank']}", r) for r in d["ranks"]]
    lines += ["", _table(["", "tok/s", "build ms", "submit ms", "wait ms", "token ms", "NCCL ms/token",
                          "peak memory", "weights held", "verdict"], rows), ""]
    ops = [[f"rank {r['rank']}", o["op"], str(tuple(o["shape"])), o["dtype"], _gb(o["bytes"]), str(o["calls"])]
           for r in d["ranks"] for o in r["collectives"]["ops"]]
    if ops:
        c0 = d["ranks"][0]["collectives"]
        lines += [f"Collectives per token ({c0['method']}): rank 0 makes {c0['calls_per_token']} calls, "
                  f"{_gb(c0['bytes_per_token'])}.", "",
                  _table(["rank", "op", "shape", "dtype", "bytes each", "calls/token"], ops), ""]
    sg = d["straggler"]
    skew = (f" Tokens arrive {sg['skew_ms']['median']:.3f} ms apart across ranks (median; max "
            f"{sg['skew_ms']['max']:.3f} ms)." if sg.get("skew_ms") else "")
    lines.append(f"Straggler spread: {sg['spread_tok_s']:.2f} tok/s between the ranks' medians "
                 f"({sg['spread_share']:.1%}), slowest rank {sg['slowest_rank']}.{skew}")
    lines += ["", f"**Verdict: {d['verdict']['label']}.** {d['verdict']['sentence']}"]
    lines += [f"\n_note: {x}_" for x in d.get("notes", []) if "synthetic" not in x]
    return "\n".join(lines)


@section("parity")
def parity_section(d, ctx):
    if d.get("paired"):
        return paired_parity_section(d)
    c, st = d["comparison"], d["settings"]
    rows = [[loop, f"{x['median']:.2f}", f"{x['mad']:.2f}", f"{x['best']:.2f}", str(x["n"])]
            for loop, x in d["tok_s"].items()]
    return "\n".join([
        f"## Parity with {c['baseline']}'s own loop", "",
        f"{st['rounds']} interleaved rounds, {st['warmup']} warm-up + {st['tokens']} measured tokens, "
        "tok/s computed the same way for both loops.", "",
        _table(["loop", "median tok/s", "MAD", "best", "n"], rows), "",
        f"mlxprof / {c['baseline']}: ×{c['ratio']:.3f} (95% CI {c['ci_low']:.3f}–{c['ci_high']:.3f}, "
        f"p = {c['p_value']:.3g}): {c['verdict']}. {d['tokens']['sentence']}",
    ])


def paired_parity_section(d):
    """The paired-blocks result: one row per comparison, and the method."""
    from ..paired import stop_sentence
    from ..parity import ParityResult

    r = ParityResult.model_validate(d)
    run, st = r.paired, r.settings
    lib = r.order[-1]
    rows = [[f"{c.numerator} / {c.denominator}", f"×{c.ratio:.4f}",
             "–" if c.ci_low is None else f"{c.ci_low:.4f}–{c.ci_high:.4f}",
             "–" if c.half_width is None else f"±{c.half_width:.2%}", str(c.pairs), f"{c.p_value:.2g}", c.verdict]
            for c in run.comparisons]
    loops = ", ".join(f"{k} {v.median:.2f}" for k, v in r.tok_s.items())
    return "\n".join([
        f"## Parity with {lib}'s own loop", "",
        f"Paired blocks in one process: each loop continues its own cache in blocks of {run.settings.settle} + "
        f"{run.settings.block} tokens (the first {run.settings.settle} unmeasured), in palindromic rounds, "
        f"restarting from the same {st.prompt_tokens}-token prefill every {run.settings.rounds_per_segment} rounds; "
        f"one tok/s ratio per round, their 20%-trimmed geometric mean with a 95% bootstrap CI over rounds. "
        f"{stop_sentence(run)}.", "",
        _table(["ratio (tok/s)", "trimmed geometric mean", "95% CI", "half-width", "pairs", "Wilcoxon p", "verdict"], rows),
        "", f"Median tok/s per round: {loops}. Token ids: {r.tokens.sentence}.",
    ])


def document(docs: Dict[str, dict], plots: Dict[str, str], reproduce: List[str], title: Optional[str] = None,
             plots_skipped: Optional[str] = None) -> str:
    """The whole document. `docs`: results keyed by kind (one each; `_failures`
    lists steps not measured); `plots`: kind → image file name; `reproduce`:
    the lines of the Reproduce block; `plots_skipped`: why there are no plots."""
    if "decode" not in docs:
        raise InputError("a report needs a decode result (mlxprof decode --json …)")
    base = docs["decode"]
    if base.get("gpu") and "gpu" not in docs:
        docs = {**docs, "gpu": base["gpu"]}
    ctx = {"docs": docs, "plots": plots}
    m, p = base["model"], base["provenance"]
    title = title or f"{m['name']} decode profile — {p['chip']} ({p['backend']})"
    parts = [f"# {title}", ""]
    if m["weights"] == "synthetic":
        parts.append("> Weights are **synthetic**: the published architecture with random values. Decode timing "
                     "does not depend on weight values, so this is a profiling proxy, not a quality run.\n")
    parts += ["## Provenance", "", provenance_table(base), ""]
    parts.append(headline(docs))
    for kind in ORDER:
        if kind in docs and kind in SECTIONS:
            parts += ["", SECTIONS[kind](docs[kind], ctx)]
    if plots_skipped:
        parts += ["", f"_Plots skipped: {plots_skipped}._"]
    failures = docs.get("_failures") or []
    if failures:
        parts += ["", "## Not measured", ""] + [f"- {f}" for f in failures]
    parts += ["", "## Reproduce", "", "```bash", *reproduce, "```", ""]
    # the measurement's date, not today's: re-rendering the same JSON gives the same document
    parts += [f"_Measured on {p['date'][:10]}; rendered by mlxprof from the JSON results the commands above "
              "write._", ""]
    return "\n".join(parts)


def headline(docs) -> str:
    d = docs["decode"]
    ts = d["tok_s"]
    line = (f"**Headline:** {ts['median']:.2f} tok/s median ({ts['best']:.2f} best of {ts['n']}, "
            f"MAD {ts['mad']:.2f}); {d['verdict']['label']}")
    fl = docs.get("floor")
    if fl and fl.get("floor_tok_s"):
        floor_tok_s = fl["floor_tok_s"]
        line += f"; decode runs at {ts['median'] / floor_tok_s:.0%} of the weight-streaming floor ({floor_tok_s:.3g} tok/s)"
    return line + "."
