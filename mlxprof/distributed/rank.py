"""One rank of a sharded decode (or the unsharded one-device baseline): join
the group, open the model, shard it, count its collectives, measure decode
exactly as `mlxprof decode` does, print one tagged reply line (protocol.py).

    python -m mlxprof.distributed.rank JOB_JSON

Every rank opens the same model with the same synthetic seed (models/synthetic.py
seeds MLX's generator before drawing), so the shards of all ranks are slices of
one model, and runs the same runs and tokens: the collectives keep them in
lockstep. Sharding is the model's own, as mlx-lm's `sharded_load` does it
(mlx_lm/utils.py): `model.shard(group)` for tensor parallel,
`model.model.pipeline(group)` for pipeline parallel, then the shard is
evaluated and every rank meets at an all_sum before anything is timed.
"""

import time

T_MAIN = time.time()  # before any heavy import: the end of interpreter start-up

import os  # noqa: E402
import sys  # noqa: E402

ENV_PREFIXES = ("MLX_", "NCCL_", "CUDA_VISIBLE_DEVICES")
SPAN_LIMIT = 200_000  # kernel spans one rank sends back for a trace


class DryGroup:
    """A stand-in for mx.distributed.Group of `n` ranks: mlx.nn's shard_linear
    and mlx-lm's pipeline only ask a group its size() and rank() while they
    split weights, so a lazily built model can be split without any process
    group, to see whether it splits at all."""

    def __init__(self, n: int, rank: int = 0):
        self.n, self.r = n, rank

    def size(self) -> int:
        return self.n

    def rank(self) -> int:
        return self.r


def shard(text, parallel: str, group):
    """Split an mlx-lm model in place the model's own way; ValueError when it
    cannot be split that many ways, TypeError when it has no such support."""
    if parallel == "tensor":
        if not hasattr(text, "shard"):
            raise TypeError("no tensor-parallel support (the model has no shard())")
        text.shard(group)
    else:
        if not hasattr(getattr(text, "model", None), "pipeline"):
            raise TypeError("no pipeline-parallel support (its model.model has no pipeline())")
        text.model.pipeline(group)
    heads = [(name, getattr(m, a)) for name, m in text.named_modules()
             for a in ("n_heads", "n_kv_heads", "num_heads", "num_key_value_heads")
             if isinstance(getattr(m, a, None), int)]
    empty = next((name for name, n in heads if n < 1), None)
    if empty is not None:
        raise ValueError(f"{empty} would keep no attention heads")


def _reply_env() -> dict:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}


TRACED_SET = (
    "Per rank, a set of kernel-traced runs (CUPTI CONCURRENT_KERNEL over the whole set, prefill and warm-up "
    "included) comes first; the untraced runs follow and alone give tok/s and the split. NCCL kernels are "
    "attributed to the measured tokens of the traced runs."
)


def _measure(s, ids, settings, job, notes):
    """Traced runs first (--gpu-timeline), then the untraced runs that give tok/s."""
    import mlx.core as mx

    from .. import decode as dec
    from . import collectives

    traced, timeline, comm, spans = [], None, None, []
    if job.gpu_timeline:
        from ..gpu.cupti import Recorder, RecorderError
        from ..errors import InputError

        try:
            with Recorder(sync=mx.synchronize) as rec:
                traced = dec.measure(s.model, ids, settings.runs, settings.warmup, settings.tokens,
                                     on_run=rec.flush)
        except RecorderError as e:
            raise InputError(f"--gpu-timeline: {e}") from e
        timeline = rec.analyze(traced)
        timeline.method = TRACED_SET
        comm = collectives.comm_time(rec.kernels, rec.clock, traced)
        if comm is None and job.backend == "nccl":
            notes.append("GPU timeline: no NCCL kernel was recorded inside the measured tokens")
        if job.spans:
            spans = timeline.spans()[:SPAN_LIMIT]
    runs = dec.measure(s.model, ids, settings.runs, settings.warmup, settings.tokens)
    return runs, traced, timeline, comm, spans


def run(job, spawn_time=None):
    """Measure one rank's share of the job; returns its protocol.RankReply."""
    import socket

    t_init = time.time()
    import mlx.core as mx

    from ..errors import InputError
    from ..models.weights import bytes_per_token, total_bytes
    from ..session import open_session
    from . import collectives
    from .protocol import RankReply, RankTiming

    group = None
    if job.backend is not None:
        group = mx.distributed.init(strict=True, backend=job.backend)
        if group.size() != job.ranks:
            raise InputError(f"--ranks {job.ranks}, but the {job.backend} group that started has "
                             f"{group.size()} ranks")
    t_build = time.time()
    s = open_session(job.model, job.weights, job.dtype,
                     counts=dict(runs=job.runs, warmup=job.warmup, tokens=job.tokens,
                                 prompt_tokens=job.prompt_tokens))
    settings = s.plan(job.runs, job.warmup, job.tokens, job.prompt_tokens, job.prompt)
    ids = s.prompt(settings.prompt_tokens, job.prompt)
    settings.prompt_tokens = len(ids)
    t_shard = time.time()
    if group is not None:
        shard(s.model.text, job.parallel, group)
        mx.eval(s.model.text.parameters())
        mx.eval(mx.distributed.all_sum(mx.array(1.0), group=group))  # every rank ready, as sharded_load
        mx.clear_cache()  # the unsharded weights' buffers: not this rank's memory any more
    t_measure = time.time()
    notes = list(s.notes)
    coll = collectives.count(s.model, ids[-1])
    runs, traced, timeline, comm, spans = _measure(s, ids, settings, job, notes)
    t_done = time.time()
    return RankReply(
        rank=group.rank() if group is not None else 0, size=group.size() if group is not None else 1,
        host=socket.gethostname(), backend=s.backend, chip=s.chip.label, runs=runs, gpu_runs=traced,
        settings=settings, model=s.identity, weight_bytes=total_bytes(s.model.text),
        bytes_per_token=bytes_per_token(s.model.text), collectives=coll, gpu=timeline, comm=comm,
        spans=spans, env=_reply_env(), notes=notes,
        timing=RankTiming(start_s=T_MAIN - (spawn_time or T_MAIN), init_s=t_build - t_init,
                          build_s=t_shard - t_build, shard_s=t_measure - t_shard, measure_s=t_done - t_measure),
    )


def main(argv=None) -> int:
    from ..sweep.protocol import SPAWN_VAR, read_record
    from ..sweep.worker import serve
    from .protocol import RankJob

    spawn = float(os.environ.get(SPAWN_VAR, T_MAIN))
    return serve(sys.argv[1:] if argv is None else argv, "mlxprof.distributed.rank",
                 lambda text, *_: run(read_record(text, RankJob, "unreadable rank job: "), spawn))


if __name__ == "__main__":
    sys.exit(main())
