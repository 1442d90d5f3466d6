"""What crosses the process boundary between `mlxprof decode --ranks` and its ranks.

The parent starts `python -m mlxprof.distributed.rank JOB_JSON` (a `RankJob`)
once per rank, and once more, unsharded, for the one-device baseline; each
prints one line `TAG + RankReply JSON` on stdout through the sweep workers'
protocol (sweep/protocol.py `tagged_line` / `read_tagged`, sweep/worker.py
`serve`): only the last tagged line counts, anything else a library prints is
ignored, and a reply of the wrong shape is a ProtocolError.
"""

from typing import Dict, List, Optional, Tuple

from ..decode import DecodeSettings, RunRecord
from ..gpu.timeline import GpuTimeline
from ..results import ModelIdentity, Record
from ..sweep.protocol import WorkerJob
from .collectives import Collectives, CommTime


class RankJob(WorkerJob):
    """A sweep worker's job (model, weights, dtype, counts) and what a rank adds."""

    prompt: Optional[str] = None
    parallel: Optional[str] = None  # "tensor" / "pipeline"; None: the unsharded baseline
    backend: Optional[str] = None  # mx.distributed backend ("ring", "nccl", …); None: no group
    ranks: int = 1  # the group size the launcher started
    gpu_timeline: bool = False
    spans: bool = False  # send the traced kernels' spans back (for --trace)


class RankTiming(Record):
    start_s: float  # parent's spawn → the rank module's first line
    init_s: float  # imports and mx.distributed.init (waits for every rank to connect)
    build_s: float  # opening the model (mlxprof.session.open_session)
    shard_s: float  # model.shard / model.model.pipeline, evaluating the shard, and a barrier
    measure_s: float  # counting collectives and the decode runs


class RankReply(Record):
    rank: int
    size: int
    host: str  # socket.gethostname(): same-host ranks share one perf_counter clock
    backend: str  # MLX's backend: cuda, metal, cpu
    chip: str
    runs: List[RunRecord]
    gpu_runs: List[RunRecord] = []  # traced runs (--gpu-timeline), not part of tok/s
    settings: DecodeSettings
    model: ModelIdentity  # the unsharded model, as `mlxprof decode` names it
    weight_bytes: int  # parameter bytes this rank holds after sharding
    bytes_per_token: int  # weight bytes this rank streams per token
    collectives: Collectives
    gpu: Optional[GpuTimeline] = None
    comm: Optional[CommTime] = None
    spans: List[Tuple[str, float, float]] = []  # (kernel, start_s, dur_s) on perf_counter
    env: Dict[str, str] = {}  # the MLX_* / NCCL_* / CUDA_VISIBLE_DEVICES variables the rank saw
    notes: List[str] = []
    timing: RankTiming
