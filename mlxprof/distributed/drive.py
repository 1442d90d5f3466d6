"""`mlxprof decode --ranks N`: validate, measure one device, measure N ranks, assemble.

Order: everything cheap is checked first (counts, outputs, ranks, devices,
ports, then the model and whether it splits N ways, built lazily), then the one-device baseline runs
in its own process, then the N ranks; the parent only waits, so it holds no
model while they run. Started by `mlx.launch` instead, this process is one
rank: every rank measures, the replies meet on rank 0 (an all_gather), and
rank 0 alone measures the baseline afterwards and reports.
"""

import os
import tempfile
from typing import Callable, Dict, List, Optional

from .. import results
from ..errors import InputError
from . import launch
from . import PARALLEL
from ..sweep.protocol import read_record, read_tagged
from .protocol import RankJob, RankReply


# who implements what in mlx-lm 0.32 (mlx_lm/models/*.py: a Model.shard method; a model
# class with PipelineMixin, mlx_lm/models/pipeline.py): examples for the refusal
SUPPORT = {"tensor": ("model.shard(group)", "Llama, Mistral, Qwen2, Qwen3, Qwen3-MoE, gpt-oss, DeepSeek-V3"),
           "pipeline": ("model.model.pipeline(group)", "Qwen2, Qwen3-MoE, Qwen3-Next, DeepSeek-V3, GLM-4-MoE "
                                                        "(not Llama)")}


def check_sharding(target, parallel: str, ranks: int):
    """InputError unless the model (built lazily: nothing evaluated) splits
    `ranks` ways its own way, checked with a stand-in group (rank.DryGroup)."""
    from ..models import adapters
    from ..models.synthetic import text_module
    from .rank import DryGroup, shard

    for r in sorted({0, ranks - 1}):  # pipeline stages differ by rank; the ends are the extremes
        model = adapters.build(target.config, target.library, target.name)
        text = text_module(model, target.library)
        adapters.quantize(text, target.config, prefix="language_model." if text is not model else "")
        try:
            shard(text, parallel, DryGroup(ranks, r))
        except TypeError as e:
            need, who = SUPPORT[parallel]
            raise InputError(f"{target.name} ({target.config.get('model_type')}, {target.library}) has "
                             f"{e.args[0].split(' (')[0]}: --parallel {parallel} needs {need}, which mlx-lm "
                             f"implements for e.g. {who}")
        except (ValueError, IndexError, ZeroDivisionError) as e:
            raise InputError(f"{target.name} cannot be split {ranks} ways (--parallel {parallel}): "
                             f"{' '.join(str(e).split())}")


def check_inputs(ranks, parallel, counts, outputs, port=None):
    """What needs neither the model nor the device."""
    from .. import decode as dec
    from ..session import check_outputs

    if parallel not in PARALLEL:
        raise InputError(f"--parallel must be one of {', '.join(PARALLEL)}, not '{parallel}'")
    launch.check_ranks(ranks)
    if port is not None:
        launch.check_port_number(port)
    dec.validate_counts(**counts)
    check_outputs(*outputs)


def check_model(model, weights, parallel, ranks, counts):
    """The model resolves, the counts fit its positions, and it splits `ranks` ways."""
    from .. import models
    from ..session import check_positions

    target = models.resolve(model, weights)
    check_positions(target, counts)
    check_sharding(target, parallel, ranks)


def _replies(texts: List[str], who: str = "rank") -> List[RankReply]:
    from ..sweep.protocol import ProtocolError

    out = []
    for r, text in enumerate(texts):
        try:
            out.append(read_tagged(text, RankReply))
        except ProtocolError as e:
            raise launch.RankError(f"{who} {r} printed no readable reply ({e})") from None
    return out


def baseline_run(job: RankJob, env: Dict[str, str], timeout, log) -> RankReply:
    """The same model, unsharded, in one process on one device."""
    log("[distributed] one device, unsharded: the baseline …")
    one = job.model_copy(update=dict(parallel=None, backend=None, ranks=1))
    return _replies(launch.run_processes(one.model_dump_json(), [env], timeout, who="baseline"), "baseline")[0]


def decode(model: str, ranks: int = 2, parallel: str = "tensor", weights: str = "auto",
           dtype: Optional[str] = None, runs: Optional[int] = None, warmup: Optional[int] = None,
           tokens: Optional[int] = None, prompt_tokens: Optional[int] = None, prompt: Optional[str] = None,
           port: Optional[int] = None, env: Optional[Dict[str, str]] = None, gpu_timeline: bool = False,
           trace_path: Optional[str] = None, json_path: Optional[str] = None, baseline: bool = True,
           timeout: Optional[float] = None, progress: bool = False, command: Optional[str] = None):
    """Profile decode sharded over `ranks` processes on this host (or, under
    mlx.launch, over the group it started), against one device; a
    DistributedResult (None on ranks other than 0 of an mlx.launch run)."""
    from .. import hardware

    log = _logger(progress)
    counts = dict(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    job = RankJob(model=model, weights=weights, dtype=dtype, prompt=prompt, parallel=parallel, ranks=ranks,
                  gpu_timeline=gpu_timeline, spans=trace_path is not None, **counts)
    check_inputs(ranks, parallel, counts, (json_path, trace_path), port)
    if launch.joined():
        launch.check_parallel(parallel, launch.joined_backend())
        check_model(model, weights, parallel, ranks, counts)
        return _joined(job, baseline, timeout, log, command, trace_path)
    check_model(model, weights, parallel, ranks, counts)
    chip = hardware.detect()
    gpus = _gpu_count() if chip.backend == "cuda" else 0
    launch.check_devices(ranks, chip.backend, gpus, os.environ.get("CUDA_VISIBLE_DEVICES"))
    launch.check_parallel(parallel, launch.backend_for(chip.backend))
    if gpu_timeline:
        from ..gpu.cupti import check_available

        check_available(chip.backend)
    with tempfile.TemporaryDirectory(prefix="mlxprof-dist-") as d:
        p = launch.plan(ranks, chip.backend, d, port, env)  # ports checked free
        launch.write_files(p.files)
        base = baseline_run(job, p.baseline_env, timeout, log) if baseline else None
        log(f"[distributed] {ranks} ranks, {parallel} parallel over {p.info.backend} …")
        job = job.model_copy(update=dict(backend=p.info.backend))
        replies = _replies(launch.run_processes(job.model_dump_json(), p.rank_env, timeout))
    prov = results.provenance(command, chip)
    prov.knobs.update(results.env_knobs(env or {}))  # --env reaches every rank: knobs in force there
    return _finish(replies, base, parallel, p.info, prov, trace_path)


def _finish(replies, base, parallel, info, provenance, trace_path):
    from .result import assemble

    result = assemble(replies, base, parallel, info, provenance)
    if trace_path:
        write_trace(trace_path, result, replies)
    return result


def _gpu_count() -> int:
    import mlx.core as mx

    return mx.device_count(mx.gpu)


def _logger(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda m: None
    import click

    return lambda m: click.echo(m, err=True)


def write_trace(path, result, replies: List[RankReply]):
    """Perfetto trace: one process per rank (traced runs and their kernels with
    --gpu-timeline, else the measured runs)."""
    from .. import trace

    traced = any(r.gpu_runs for r in replies)
    procs = [(f"rank {r.rank} · {r.host} ({s.tok_s.median:.2f} tok/s)", r.gpu_runs if traced else r.runs)
             for r, s in zip(sorted(replies, key=lambda x: x.rank), result.ranks)]
    gpu = [(f"GPU · rank {r.rank}", r.spans) for r in sorted(replies, key=lambda x: x.rank) if r.spans]
    label = f"{result.model.name} · {len(replies)} ranks {result.parallel} parallel" + \
        (" · traced runs + GPU kernels" if traced else "")
    trace.write_processes(path, procs, gpu, label=label)


# ---------------------------------------------------------------- under mlx.launch


def gather(reply: RankReply, group) -> List[RankReply]:
    """Every rank's reply on every rank: the JSON texts padded to one length, all_gathered."""
    import mlx.core as mx
    import numpy as np

    data = np.frombuffer(reply.model_dump_json().encode(), dtype=np.uint8)
    sizes = np.array(mx.distributed.all_gather(mx.array([data.size], dtype=mx.int32), group=group))
    buf = np.zeros(int(sizes.max()), dtype=np.uint8)
    buf[:data.size] = data
    rows = np.array(mx.distributed.all_gather(mx.array(buf), group=group)).reshape(group.size(), -1)
    return [read_record(bytes(rows[k, :sizes[k]]).decode(), RankReply) for k in range(group.size())]


def _joined_info(backend: str, size: int) -> launch.LaunchInfo:
    import json
    import socket

    ports = []
    if os.environ.get("NCCL_PORT", "").isdigit():
        ports = [int(os.environ["NCCL_PORT"])]
    elif os.environ.get("MLX_HOSTFILE"):
        try:
            with open(os.environ["MLX_HOSTFILE"]) as f:
                ports = [int(a.rsplit(":", 1)[1]) for node in json.load(f) for a in node]
        except (OSError, ValueError, IndexError, TypeError):
            ports = []
    added = dict(launch.JOINED_ADDED)
    note = (f"ranks started by mlx.launch; mlxprof set {' '.join(f'{k}={v}' for k, v in added.items())} in "
            "each rank before NCCL started" if added else "ranks started by mlx.launch; mlxprof added no variables")
    return launch.LaunchInfo(mode="mlx.launch", backend=backend, ranks=size, host=socket.gethostname(),
                             ports=ports, env_added=added, notes=[note])


def _joined(job: RankJob, baseline: bool, timeout, log, command, trace_path):
    """This process is one rank of a group mlx.launch started."""
    import mlx.core as mx

    from .. import hardware
    from . import rank

    backend = launch.joined_backend()
    group = launch.join_group()  # before rank.run's own init: NCCL_NVLS_ENABLE=0 unless set
    job = job.model_copy(update=dict(backend=backend))
    reply = rank.run(job)
    replies = gather(reply, group)
    if group.rank() != 0:
        return None
    mx.clear_cache()  # this rank's model is gone; the baseline runs in a fresh process on this device
    base = baseline_run(job, {}, timeout, log) if baseline else None
    prov = results.provenance(command, hardware.detect())
    return _finish(replies, base, job.parallel, _joined_info(backend, group.size()), prov, trace_path)
