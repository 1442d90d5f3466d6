"""Decode across ranks: the launcher's environment, one-line refusals, collective
counts, NCCL time attribution, the verdict and scaling arithmetic, the per-rank
trace; and end to end, two ranks on the CPU through MLX's ring backend on
localhost (tensor and pipeline parallel, and a run started by mlx.launch)."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cuda_kernel_names import QMV, run_like
from tiny_checkpoints import CONFIGS

from mlxprof import hardware, trace
from mlxprof.cli import main
from mlxprof.decode import RunRecord
from mlxprof.distributed import collectives, launch
from mlxprof.distributed.collectives import CommTime
from mlxprof.distributed.result import DistributedResult, scaling, straggler, summarize_rank, verdict
from mlxprof.errors import InputError
from mlxprof.gpu.clock import ClockFit
from mlxprof.gpu.timeline import Kernel

ROOT = Path(__file__).resolve().parent.parent
LLAMA = CONFIGS["llama"]  # 2 layers, hidden 64, 4 heads / 2 KV heads
# Qwen2 is an mlx-lm model with both shard() and pipeline() (Llama has no pipeline)
QWEN2 = {k: v for k, v in CONFIGS["qwen3"].items() if k != "head_dim"} | {"model_type": "qwen2"}
# NCCL's kernels as CUPTI names them (NCCL >= 2.19: ncclDevKernel_<Coll>_<Op>_<type>_<ALGO>_<PROTO>
# taking ncclDevKernelArgsStorage<4096>); the same names appear in public nsys profiles
NCCL_ALLREDUCE = "_Z40ncclDevKernel_AllReduce_Sum_bf16_RING_LL24ncclDevKernelArgsStorageILm4096EE"
NCCL_SENDRECV = "_Z22ncclDevKernel_SendRecv24ncclDevKernelArgsStorageILm4096EE"

# End to end: ring on the CPU (CI); on a CUDA machine with two GPUs the same tests run NCCL
BACKEND = hardware.backend_name()
DIST_BACKEND = launch.backend_for(BACKEND)


def _two_devices():
    import mlx.core as mx

    if BACKEND == "metal" or (BACKEND == "cuda" and mx.device_count(mx.gpu) < 2):
        pytest.skip("two ranks need two GPUs here")


def free_ports(n: int) -> int:
    """A first port P with P … P+n-1 free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + n < 65536:
            try:
                for q in range(p, p + n):
                    launch.check_port(q)
                return p
            except InputError:
                continue
    pytest.skip("no run of free ports")


@pytest.fixture
def config_file(tmp_path):
    def write(config, name="model"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        return str(path)
    return write


# ---------------------------------------------------------------- the launcher


def test_ring_ranks_get_mlx_launch_variables_and_a_hostfile(tmp_path):
    p = launch.plan(2, "cpu", str(tmp_path), port=free_ports(2), env={"MLX_X": "1"})
    port = p.info.ports[0]
    assert p.info.backend == "ring" and p.info.ports == [port, port + 1]
    assert [e["MLX_RANK"] for e in p.rank_env] == ["0", "1"]
    hostfile = p.rank_env[0]["MLX_HOSTFILE"]
    assert all(e["MLX_HOSTFILE"] == hostfile and e["MLX_X"] == "1" for e in p.rank_env)
    assert json.loads(p.files[hostfile]) == [[f"127.0.0.1:{port}"], [f"127.0.0.1:{port + 1}"]]
    assert p.baseline_env == {"MLX_X": "1"}


def test_nccl_ranks_get_one_gpu_each_and_nvls_off_unless_set(tmp_path, monkeypatch):
    lib = tmp_path / "nccl-lib"
    lib.mkdir()
    monkeypatch.setattr(launch, "nccl_lib_dir", lambda python3="python3": str(lib))
    port = free_ports(1)
    p = launch.plan(2, "cuda", str(tmp_path), port=port, environ={"LD_LIBRARY_PATH": "/x"})
    assert p.info.backend == "nccl" and p.info.ports == [port]
    for r, e in enumerate(p.rank_env):
        assert (e["MLX_RANK"], e["MLX_WORLD_SIZE"], e["NCCL_HOST_IP"], e["NCCL_PORT"]) == (str(r), "2", "127.0.0.1",
                                                                                           str(port))
        assert e["CUDA_VISIBLE_DEVICES"] == str(r) and e["NCCL_NVLS_ENABLE"] == "0"
        assert e["LD_LIBRARY_PATH"] == f"{lib}{os.pathsep}/x"
    assert p.baseline_env["CUDA_VISIBLE_DEVICES"] == "0"
    assert p.info.env_added["NCCL_NVLS_ENABLE"] == "0" and any("NVLS" in n for n in p.info.notes)
    # the user's choices stand: NVLS as set, the r-th of the user's visible GPUs
    mine = launch.plan(2, "cuda", str(tmp_path), port=port,
                       environ={"NCCL_NVLS_ENABLE": "1", "CUDA_VISIBLE_DEVICES": "3,5",
                                "LD_LIBRARY_PATH": str(lib)})
    assert [e["CUDA_VISIBLE_DEVICES"] for e in mine.rank_env] == ["3", "5"]
    assert "NCCL_NVLS_ENABLE" not in mine.info.env_added and "LD_LIBRARY_PATH" not in mine.info.env_added


def test_more_ranks_than_devices_is_refused():
    with pytest.raises(InputError, match="2 CUDA GPUs"):
        launch.check_devices(3, "cuda", 2)
    launch.check_devices(2, "cuda", 2)
    launch.check_devices(8, "cpu", 0, cores=8)  # ring ranks on the CPU: one per core
    with pytest.raises(InputError, match="--ranks 9: this host has 8 CPU cores"):
        launch.check_devices(9, "cpu", 0, cores=8)
    with pytest.raises(InputError, match="one Metal GPU"):
        launch.check_devices(2, "metal", 1)
    launch.check_parallel("pipeline", "ring")
    with pytest.raises(InputError, match="NCCL backend does not implement"):
        launch.check_parallel("pipeline", "nccl")
    for bad in (1, 0, -2):
        with pytest.raises(InputError, match="at least 2"):
            launch.check_devices(bad, "cpu", 0)


def test_joined_means_started_by_mlx_launch(monkeypatch):
    for v in ("MLX_RANK",) + launch.JOIN_VARS:
        monkeypatch.delenv(v, raising=False)
    assert not launch.joined()
    monkeypatch.setenv("MLX_RANK", "0")
    assert not launch.joined()  # a rank without a group to join
    monkeypatch.setenv("NCCL_HOST_IP", "10.0.0.1")
    assert launch.joined() and launch.joined_backend() == "nccl"
    assert launch.joined_backend({"MLX_HOSTFILE": "h.json"}) == "ring"


# ---------------------------------------------------------------- refusals: exit 2, one line


def _refused(args, needle):
    r = CliRunner().invoke(main, ["decode", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlxprof: error: ") and needle in lines[0], r.output


def test_port_in_use_is_refused_before_anything_runs(config_file):
    model = config_file(LLAMA)
    port = free_ports(2)
    for held in (port, port + 1):  # the ring listens on P and P+1
        with socket.socket() as s:
            s.bind(("127.0.0.1", held))
            s.listen()
            _refused(["--config", model, "--ranks", "2", "--port", str(port)], f"port {held} on 127.0.0.1 is in use")


def test_bad_distributed_input_is_one_line(config_file):
    llama, qwen2 = config_file(LLAMA, "llama"), config_file(QWEN2, "qwen2")
    _refused(["--config", llama, "--ranks", "1"], "--ranks must be at least 2")
    _refused(["--config", llama, "--parallel", "tensor"], "need --ranks N")
    _refused(["--config", llama, "--ranks", "2", "--image", "x.png"], "image prompts are measured on one device")
    _refused(["--config", llama, "--ranks", "2", "--port", "70000"], "not a TCP port")
    _refused(["--config", llama, "--ranks", "3"], "cannot be split 3 ways")  # 4 heads, 2 KV heads
    _refused(["--config", llama, "--ranks", "2", "--parallel", "pipeline"], "no pipeline-parallel support")
    _refused(["--config", qwen2, "--ranks", "4", "--parallel", "pipeline"], "cannot be split 4 ways")
    if BACKEND == "cpu":
        _refused(["--config", llama, "--ranks", "2", "--gpu-timeline"], "--gpu-timeline needs MLX's CUDA backend")


def test_a_model_without_sharding_is_refused(tmp_path):
    _refused(["--model", "gemma3n-tiny", "--ranks", "2"], "no tensor-parallel support")
    r = CliRunner().invoke(main, ["report", "-m", "gemma3n-tiny", "--ranks", "2", "--out", str(tmp_path / "r.md")])
    assert r.exit_code == 2 and "no tensor-parallel support" in r.output  # before the report measures anything
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- collectives


def test_graph_collectives_read_mlx_primitive_names():
    dot = "\n".join(["digraph {", '{ rank=source; "A"; }', '{ 1 [label ="Sum AllReduce", shape=rectangle]; }',
                     '"A" -> 1', '{ "B"; }', '1 -> "B"', '{ 2 [label ="Sum AllReduce", shape=rectangle]; }',
                     '"B" -> 2', '{ "C"; }', '2 -> "C"', '{ 3 [label ="AllGather", shape=rectangle]; }',
                     '"C" -> 3', '{ rank=sink; "D"; }', '3 -> "D"', "}"])
    from mlxprof.graph import parse_dot

    assert collectives.graph_collectives(parse_dot(dot)) == {"all_sum": 2, "all_gather": 1}
    calls = [("all_sum", [1, 1, 64], "bfloat16", 128)] * 2 + [("all_gather", [1, 1, 64], "bfloat16", 128)]
    c = collectives.summarize_calls(calls, collectives.graph_collectives(parse_dot(dot)))
    assert c.calls_per_token == 3 and c.bytes_per_token == 384 and c.matches_graph
    assert c.by_op == {"all_sum": 2, "all_gather": 1}
    assert not collectives.summarize_calls(calls[:1], {"all_sum": 2}).matches_graph


def test_recv_by_shape_is_counted_without_an_array():
    import mlx.core as mx

    assert collectives._call_record("recv", ([1, 1, 64], mx.bfloat16, 1), {}) == ("recv", [1, 1, 64], "bfloat16", 128)
    assert collectives._call_record("recv_like", (mx.zeros((1, 2), mx.float32), 0), {})[3] == 8


def test_nccl_kernels_are_the_collective_time_of_each_token():
    clock = ClockFit(ref_ns=0, offset_s=0.0, slope=1.0, pairs=2, span_s=1, residual_us=0, uncertainty_us=0)
    ms = 1_000_000
    ks = []
    for tok in range(3):  # tokens every 10 ms from t=10 ms: two all-reduces (1 ms, overlapping), a send/recv
        b = (10 + 10 * tok) * ms
        ks += [Kernel(b + 1 * ms, b + 2 * ms, NCCL_ALLREDUCE, "kernel", 0),
               Kernel(b + 1 * ms + ms // 2, b + 2 * ms + ms // 2, NCCL_ALLREDUCE, "kernel", 0),
               Kernel(b + 5 * ms, b + 6 * ms, NCCL_SENDRECV, "kernel", 0),
               Kernel(b + 2 * ms, b + 5 * ms, QMV, "kernel", 1)]
    ks.append(Kernel(1 * ms, 3 * ms, NCCL_ALLREDUCE, "kernel", 0))  # warm-up: outside the windows
    run = run_like(0.010, [0.010, 0.020, 0.030, 0.040])
    t = collectives.comm_time(ks, clock, [run])
    assert t.ms_per_token.median == pytest.approx(2.5)  # union 1.5 ms of all-reduce + 1 ms send/recv
    assert t.kernels_per_token == pytest.approx(3.0)
    assert t.token_ms == pytest.approx(10.0) and t.share == pytest.approx(0.25)
    assert list(t.kernels) == ["ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "ncclDevKernel_SendRecv"]
    assert t.kernels["ncclDevKernel_AllReduce_Sum_bf16_RING_LL"] == pytest.approx(2.0)
    assert collectives.comm_time([Kernel(1, 2, QMV, "kernel", 1)], clock, [run]) is None


# ---------------------------------------------------------------- verdict, scaling, straggler


def fake_reply(rank, backend, build, submit, wait, runs=3, offset=0.0, comm=None, tok_s=None):
    """A RankReply whose tokens all take build + submit + wait ms (delivered `offset` s later)."""
    from mlxprof.distributed.protocol import RankReply, RankTiming

    tok = build + submit + wait
    n = 8
    recs = [RunRecord(prompt_tokens=4, warmup=0, tokens=n, prefill_s=0.01,
                      tok_s=(tok_s[j] if tok_s else 1e3 / tok), build_ms=[build] * n, submit_ms=[submit] * n,
                      wait_ms=[wait] * n, token_ms=[tok] * n, t0=100.0 * j + offset,
                      deliveries_s=[i * tok / 1e3 for i in range(n)], peak_memory_bytes=1000,
                      token_ids=list(range(n))) for j in range(runs)]
    c = collectives.summarize_calls([("all_sum", [1, 1, 64], "bfloat16", 128)] * 4, {"all_sum": 4})
    from mlxprof.decode import DecodeSettings
    from mlxprof.results import ModelIdentity

    return RankReply(rank=rank, size=2, host="h", backend=backend, chip="c", runs=recs,
                     settings=DecodeSettings(runs=runs, warmup=0, tokens=n, prompt_tokens=4, dtype="bfloat16"),
                     model=ModelIdentity(name="m", weights="synthetic", quantization="bfloat16", dtype="bfloat16",
                                         num_layers=2, parameters=1, bytes_per_token=1),
                     weight_bytes=10, bytes_per_token=5, collectives=c, comm=comm,
                     timing=RankTiming(start_s=0, init_s=0, build_s=0, shard_s=0, measure_s=0))


def _comm(share):
    from mlxprof import stats

    return CommTime(ms_per_token=stats.summarize([share * 10.0]), kernels_per_token=4, token_ms=10.0,
                    share=share, kernels={})


def test_verdict_rules_first_match_wins():
    base = summarize_rank(fake_reply(0, "cuda", 0.5, 0.5, 4.0))  # one device: 4 ms of GPU wait
    # NCCL kernels 40% of the token: communication-bound
    ranks = [summarize_rank(fake_reply(r, "cuda", 0.5, 0.5, 4.0, comm=_comm(0.4))) for r in range(2)]
    v = verdict(ranks, base, "tensor", "cuda", None)
    assert v.label == "communication-bound" and v.comm_share == pytest.approx(0.4) and "CUPTI" in v.comm_basis
    # no timeline: wait 3.5 ms where one device's half would be 2 ms → 1.5 of 5 ms = 30%
    ranks = [summarize_rank(fake_reply(r, "cuda", 0.5, 1.0, 3.5)) for r in range(2)]
    v = verdict(ranks, base, "tensor", "cuda", None)
    assert v.label == "communication-bound" and v.comm_share == pytest.approx(0.3) and "estimate" in v.comm_basis
    # pipeline: the whole token of one device is expected on each stage
    assert verdict(ranks, base, "pipeline", "cuda", None).label != "communication-bound"
    # host-bound ranks: the tensor-parallel sentence compares build time with one device's
    ranks = [summarize_rank(fake_reply(r, "cuda", 3.0, 1.0, 1.5)) for r in range(2)]
    v = verdict(ranks, base, "tensor", "cuda", None)
    assert v.label == "host-bound per rank" and "build 3.00 ms per token per rank vs 0.50 ms on one device" in v.sentence
    ranks = [summarize_rank(fake_reply(r, "cuda", 0.2, 0.2, 9.0)) for r in range(2)]
    assert verdict(ranks, None, "tensor", "cuda", None).label == "GPU-bound"
    assert verdict(ranks, None, "tensor", "cuda", None).comm_share is None  # nothing to estimate from
    ranks = [summarize_rank(fake_reply(r, "cpu", 0.5, 5.0, 0.0)) for r in range(2)]
    assert verdict(ranks, None, "tensor", "cpu", None).label == "compute-bound"


def test_scaling_is_speedup_over_n_with_a_ci():
    base = summarize_rank(fake_reply(0, "cuda", 1, 1, 2, runs=5, tok_s=[200, 210, 205, 215, 190]))
    sc = scaling(base, [120.0, 130.0, 125.0, 128.0, 122.0], 2)
    assert sc.speedup == pytest.approx(125.0 / 205.0)
    assert sc.efficiency == pytest.approx(sc.speedup / 2)
    assert sc.efficiency_ci[0] <= sc.efficiency <= sc.efficiency_ci[1]
    assert sc.comparison.verdict == "regression"


def test_straggler_spread_and_arrival_skew():
    a = summarize_rank(fake_reply(0, "cpu", 1, 1, 1, tok_s=[100, 100, 100]))
    b = summarize_rank(fake_reply(1, "cpu", 1, 1, 1, offset=0.001, tok_s=[90, 90, 90]))
    s = straggler([a, b], same_clock=True)
    assert s.spread_tok_s == pytest.approx(10.0) and s.slowest_rank == 1
    assert s.skew_ms.median == pytest.approx(1.0) and s.last_share == {"0": 0.0, "1": 1.0}
    assert straggler([a, b], same_clock=False).skew_ms is None


def test_rank_trace_has_one_process_per_rank():
    ranks = [fake_reply(r, "cpu", 1, 1, 1, offset=0.0005 * r).runs for r in range(3)]
    t = trace.build_processes([(f"rank {r}", runs) for r, runs in enumerate(ranks)],
                              [("GPU · rank 0", [("k", 100.0, 0.001)])])
    assert trace.validate(t) == []
    names = {e["pid"]: e["args"]["name"] for e in t["traceEvents"] if e["name"] == "process_name"}
    assert names == {1: "rank 0", 2: "rank 1", 3: "rank 2", trace.GPU_PID: "GPU · rank 0"}
    spans = [e for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 1]
    assert len(spans) == 3 * 8 * 3  # every run's tokens on the rank's three phase tracks


# ---------------------------------------------------------------- end to end: two CPU ranks, ring backend


def test_tensor_parallel_two_ranks_end_to_end(config_file, tmp_path):
    _two_devices()
    out, tr = tmp_path / "d.json", tmp_path / "t.json"
    r = CliRunner().invoke(main, ["decode", "--config", config_file(LLAMA), "--ranks", "2", "--port",
                                  str(free_ports(2)), "--runs", "2", "--warmup", "2", "--tokens", "6",
                                  "--json", str(out), "--trace", str(tr), "-q"])
    assert r.exit_code == 0, r.output
    d = DistributedResult.model_validate_json(out.read_text())
    assert d.launch.backend == DIST_BACKEND and d.launch.mode == "spawned" and [x.rank for x in d.ranks] == [0, 1]
    for rk in d.ranks:  # Llama: o_proj and down_proj sum their shards, twice per layer
        c = rk.collectives
        assert c.by_op == {"all_sum": 2 * LLAMA["num_hidden_layers"]} and c.matches_graph
        assert [(o.shape, o.dtype, o.bytes) for o in c.ops] == [([1, 1, LLAMA["hidden_size"]], "bfloat16",
                                                                 LLAMA["hidden_size"] * 2)]
        assert rk.weight_bytes < d.baseline.weight_bytes and rk.peak_memory_bytes > 0
        assert len(rk.runs) == 2 and rk.tok_s.n == 2
    assert d.tokens_agree and d.baseline.collectives.calls_per_token == 0
    # every rank builds every layer: no fewer graph nodes than one device, and its all_sums on top
    assert d.ranks[0].collectives.graph_nodes >= d.baseline.collectives.graph_nodes + 2 * LLAMA["num_hidden_layers"]
    assert d.tok_s.samples == [min(x.runs[j].tok_s for x in d.ranks) for j in range(2)]
    assert d.scaling.efficiency == pytest.approx(d.scaling.speedup / 2)
    assert d.verdict.label and d.verdict.sentence.startswith(d.verdict.label[0].upper())
    t = json.loads(tr.read_text())
    assert trace.validate(t) == []
    assert sorted(e["args"]["name"].split(" ·")[0] for e in t["traceEvents"]
                  if e["name"] == "process_name") == ["rank 0", "rank 1"]
    assert "scaling" in r.output and "all_sum" in r.output  # the table
    # and the report renders it beside the one-device decode
    dec = tmp_path / "one.json"
    assert CliRunner().invoke(main, ["decode", "--config", config_file(LLAMA), "--runs", "2", "--warmup", "1",
                                     "--tokens", "3", "--json", str(dec), "-q"]).exit_code == 0
    md = tmp_path / "r.md"
    r = CliRunner().invoke(main, ["report", "--from", str(dec), "--from", str(out), "--out", str(md), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "## Decode across 2 devices (tensor parallel)" in md.read_text()


@pytest.mark.skipif(DIST_BACKEND != "ring", reason="pipeline parallel needs send/recv: not in MLX's NCCL backend")
def test_pipeline_parallel_two_ranks(config_file):
    import mlxprof.distributed as dist

    _two_devices()
    d = dist.decode(config_file(QWEN2), ranks=2, parallel="pipeline", runs=1, warmup=1, tokens=4,
                    port=free_ports(2), baseline=False)
    ops = {rk.rank: rk.collectives.by_op for rk in d.ranks}
    # mlx_lm/models/qwen2.py: the last stage (rank 0) receives, the first (rank 1) sends; all gather h
    assert ops == {0: {"recv": 1, "all_gather": 1}, 1: {"send": 1, "all_gather": 1}}
    assert d.tokens_agree and d.scaling is None and any("stages run one after another" in n for n in d.notes)


@pytest.mark.skipif(shutil.which("mlx.launch") is None, reason="mlx.launch not on PATH")
def test_joins_a_run_started_by_mlx_launch(config_file, tmp_path):
    _two_devices()
    out = tmp_path / "j.json"
    code = ("import sys, mlxprof.distributed as d, mlxprof.results as res\n"
            f"r = d.decode({config_file(LLAMA)!r}, ranks=2, runs=1, warmup=1, tokens=4, baseline=False)\n"
            f"r is None or res.save(r, {str(out)!r})\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if DIST_BACKEND == "nccl":
        env.update(launch.nccl_env(env)[0])
    port = ["--starting-port"] if DIST_BACKEND == "ring" else ["--nccl-port"]
    p = subprocess.run(["mlx.launch", "-n", "2", "--backend", DIST_BACKEND, *port, str(free_ports(2)), "--",
                        sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    d = DistributedResult.model_validate_json(out.read_text())
    assert d.launch.mode == "mlx.launch" and d.launch.backend == DIST_BACKEND and len(d.ranks) == 2
    assert d.ranks[0].collectives.by_op == {"all_sum": 4} and d.tokens_agree


def test_ring_ports_past_65535_are_refused_naming_ranks_and_port(tmp_path):
    with pytest.raises(InputError, match="--ranks 3 from port 65534 needs ports 65534–65536"):
        launch.plan(3, "cpu", str(tmp_path), port=65534)
