"""Decode across devices: tensor- and pipeline-parallel decode through mx.distributed.

    import mlxprof.distributed as dist
    r = dist.decode("llama3.1-8b-bf16", ranks=2, parallel="tensor")
    r.scaling.efficiency, r.verdict.sentence

    launch.py       start N ranks on this host as mlx.launch would (ring / NCCL), or join mlx.launch's
    rank.py         one rank: init, open, shard, count collectives, measure (python -m …rank JOB)
    collectives.py  all_sum / all_gather / send / recv per token; NCCL GPU time from CUPTI
    result.py       per rank, straggler spread, scaling against one device, the verdict
    drive.py        checks, baseline, ranks, result, trace (the library call below)
    table.py        the terminal table; the CLI's glue

Imports nothing heavy: `python -m mlxprof.distributed.rank` times its own imports,
and the CLI declares its options without importing MLX.
"""

PARALLEL = ("tensor", "pipeline")


def decode(model: str, ranks: int = 2, parallel: str = "tensor", **options):
    """Decode `model` sharded over `ranks` processes on this host (MLX's ring
    backend on the CPU, NCCL on CUDA, one rank per GPU), against the same
    model on one device measured in the same call. `parallel`: "tensor"
    (model.shard) or "pipeline" (model.model.pipeline). Options: weights,
    dtype, runs, warmup, tokens, prompt_tokens, prompt, port, env (dict of
    variables for every rank), gpu_timeline, trace_path, json_path, baseline,
    timeout, progress, command. Returns a DistributedResult."""
    from .drive import decode as run

    return run(model, ranks=ranks, parallel=parallel, **options)
