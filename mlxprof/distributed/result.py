"""The result of a sharded decode: per rank, across ranks, against one device.

tok/s of the group, per run, is its slowest rank's: a token is decoded when
every rank has it (the collectives keep the ranks in lockstep, so the ranks'
rates differ by little). Scaling compares those runs with the same model
measured unsharded on one device in the same command: speedup = median(group)
/ median(one device), efficiency = speedup / N, both with a bootstrap 95% CI
(stats.compare).

Verdict, first match wins:
  communication-bound  collectives take >= 30% of a token: with a CUDA
                       timeline, the NCCL kernels' busy time per token
                       (union, CUPTI); without one, the rank's device time
                       beyond what one device needed for its share (tensor:
                       1/N of one device's; pipeline: all of it, the stages
                       run one after another), an estimate
  compute-bound        the CPU backend (each rank's token is CPU compute)
  host-bound per rank  most ranks' own decode verdict is host-bound
  GPU-bound            every rank's decode verdict is GPU-bound
  mixed                otherwise
(the device time of a token is wait on CUDA, submit + wait on Metal and
the CPU, as in decode.verdict.)
"""

import statistics
from typing import Dict, List, Optional

from .. import stats
from ..decode import DecodeSettings, PhaseSplit, RunRecord, Verdict, summarize_runs
from ..gpu.timeline import GpuTimeline
from ..results import ModelIdentity, Record, Result
from .collectives import Collectives, CommTime
from .launch import LaunchInfo
from .protocol import RankReply, RankTiming

COMM_BOUND = 0.3  # share of a token in collectives from which communication is the limit


class RankSummary(Record):
    rank: int
    host: str
    tok_s: stats.Summary
    prefill_tok_s: stats.Summary
    split: PhaseSplit
    verdict: Verdict  # decode.verdict on this rank's split (busy fraction with a timeline)
    peak_memory_bytes: int
    weight_bytes: int  # parameters held
    bytes_per_token: int  # weights streamed per token
    collectives: Collectives
    comm: Optional[CommTime] = None
    gpu: Optional[GpuTimeline] = None
    runs: List[RunRecord]
    gpu_runs: List[RunRecord] = []
    timing: RankTiming
    env: Dict[str, str] = {}


class Straggler(Record):
    spread_tok_s: float  # max − min of the ranks' median tok/s
    spread_share: float  # of their mean
    slowest_rank: int
    skew_ms: Optional[stats.Summary] = None  # per token: last rank's delivery − first rank's
    last_share: Dict[str, float] = {}  # rank → share of tokens it delivered last
    note: str


class Scaling(Record):
    ranks: int
    comparison: stats.Comparison  # baseline "1 device", candidate "N ranks"
    speedup: float
    efficiency: float  # speedup / N
    efficiency_ci: List[float]  # [low, high]


class DistVerdict(Record):
    label: str
    comm_share: Optional[float]
    comm_basis: str
    host_share: float  # mean over ranks: build (+ submit on CUDA) / token
    sentence: str


class DistributedResult(Result):
    kind: str = "distributed"
    model: ModelIdentity
    settings: DecodeSettings
    parallel: str
    launch: LaunchInfo
    tok_s: stats.Summary  # per run, the slowest rank's tok/s
    ranks: List[RankSummary]
    straggler: Straggler
    baseline: Optional[RankSummary] = None
    scaling: Optional[Scaling] = None
    verdict: DistVerdict
    tokens_agree: bool  # every rank decoded the same token ids in every run
    notes: List[str] = []


def summarize_rank(reply: RankReply) -> RankSummary:
    busy = reply.gpu.verdict_busy()[0] if reply.gpu is not None else None
    tok, pre, split, verdict = summarize_runs(reply.runs, reply.backend, busy)
    if reply.gpu is not None:
        from .. import stats

        # the traced set against the untraced runs of the same rank (two sequential sets)
        reply.gpu.traced_tok_s = stats.summarize([r.tok_s for r in reply.gpu_runs])
        reply.gpu.overhead = stats.compare([r.tok_s for r in reply.runs], [r.tok_s for r in reply.gpu_runs],
                                           names=("untraced", "traced"))
    return RankSummary(
        rank=reply.rank, host=reply.host, tok_s=tok, prefill_tok_s=pre, split=split, verdict=verdict,
        peak_memory_bytes=max(r.peak_memory_bytes for r in reply.runs), weight_bytes=reply.weight_bytes,
        bytes_per_token=reply.bytes_per_token, collectives=reply.collectives, comm=reply.comm, gpu=reply.gpu,
        runs=reply.runs, gpu_runs=reply.gpu_runs, timing=reply.timing, env=reply.env,
    )


def straggler(ranks: List[RankSummary], same_clock: bool) -> Straggler:
    """Spread of the ranks' rates and, on one clock, how far apart they deliver each token."""
    med = [r.tok_s.median for r in ranks]
    slowest = min(range(len(ranks)), key=lambda k: med[k])
    spread = max(med) - min(med)
    out = dict(spread_tok_s=spread, spread_share=spread / statistics.fmean(med) if any(med) else 0.0,
               slowest_rank=ranks[slowest].rank)
    if not same_clock:
        return Straggler(**out, note="ranks on several hosts: their clocks differ, no per-token arrival skew")
    skews, last = [], [0] * len(ranks)
    for j in range(min(len(r.runs) for r in ranks)):
        n = min(len(r.runs[j].deliveries_s) for r in ranks)
        for i in range(n):
            t = [r.runs[j].t0 + r.runs[j].deliveries_s[i] for r in ranks]
            skews.append((max(t) - min(t)) * 1e3)
            last[t.index(max(t))] += 1
    total = sum(last) or 1
    return Straggler(**out, skew_ms=stats.summarize(skews or [0.0], higher_is_better=False),
                     last_share={str(r.rank): c / total for r, c in zip(ranks, last)},
                     note="ranks on one host share its perf_counter clock (CLOCK_MONOTONIC): delivery "
                          "times compare directly")


def group_tok_s(ranks: List[RankSummary]) -> List[float]:
    """Per run, the slowest rank's tok/s."""
    return [min(r.runs[j].tok_s for r in ranks) for j in range(min(len(r.runs) for r in ranks))]


def scaling(baseline: RankSummary, group: List[float], n: int) -> Scaling:
    c = stats.compare(baseline.tok_s.samples, group, names=("1 device", f"{n} ranks"))
    return Scaling(ranks=n, comparison=c, speedup=c.ratio, efficiency=c.ratio / n,
                   efficiency_ci=[c.ci_low / n, c.ci_high / n])


def device_ms(split: PhaseSplit, backend: str) -> float:
    """The device's time in a token, as decode.verdict takes it."""
    return split.wait_ms if backend == "cuda" else split.submit_ms + split.wait_ms


def host_share(split: PhaseSplit, backend: str) -> float:
    return split.share("build") + (split.share("submit") if backend == "cuda" else 0.0)


def comm_share(r: RankSummary, baseline: Optional[RankSummary], parallel: str, n: int, backend: str):
    """(share of the token in collectives, basis) for one rank; (None, why) when unknown."""
    if r.comm is not None:
        return r.comm.share, ("NCCL kernels' GPU time per token from the CUPTI timeline, waiting for the "
                              "slower rank included")
    if baseline is None:
        return None, "no one-device baseline to estimate it from"
    own = device_ms(baseline.split, backend) / (n if parallel == "tensor" else 1)
    extra = max(0.0, device_ms(r.split, backend) - own)
    return (extra / r.split.token_ms if r.split.token_ms else 0.0,
            "estimate: device time per token beyond one device's " + ("1/N share" if parallel == "tensor"
                                                                      else "whole token (stages run in turn)"))


def verdict(ranks: List[RankSummary], baseline: Optional[RankSummary], parallel: str, backend: str,
            scale: Optional[Scaling]) -> DistVerdict:
    n = len(ranks)
    shares = [comm_share(r, baseline, parallel, n, backend) for r in ranks]
    known = [s for s, _ in shares if s is not None]
    comm = statistics.fmean(known) if len(known) == n else None
    basis = shares[0][1]
    host = statistics.fmean(host_share(r.split, backend) for r in ranks)
    labels = [r.verdict.label for r in ranks]
    if comm is not None and comm >= COMM_BOUND:
        label = "communication-bound"
        why = f"collectives take ~{comm:.0%} of each token ({basis})"
    elif backend == "cpu":
        label = "compute-bound"
        why = "on the CPU backend each rank computes its token inside mx.async_eval"
    elif 2 * labels.count("host-bound") > n:
        label = "host-bound per rank"
        why = f"the host takes ~{host:.0%} of each rank's token (graph build and submit)"
        if parallel == "tensor" and baseline is not None:
            b = statistics.fmean(r.split.build_ms for r in ranks)
            nodes = (f"{ranks[0].collectives.graph_nodes} graph nodes per token per rank vs "
                     f"{baseline.collectives.graph_nodes} on one device; " if baseline.collectives.graph_nodes
                     else "")
            why += (f"; sharding splits the weights, not the graph: every rank still builds every layer "
                    f"({nodes}build {b:.2f} ms per token per rank vs {baseline.split.build_ms:.2f} ms on one "
                    "device)")
    elif labels.count("GPU-bound") == n:
        label, why = "GPU-bound", "every rank's device time is most of its token"
    else:
        label, why = "mixed", "no single limit: " + ", ".join(f"rank {r.rank} {r.verdict.label}" for r in ranks)
    if comm is not None and label != "communication-bound":
        why += f"; collectives ~{comm:.0%} of a token ({basis})"
    sentence = f"{label[0].upper()}{label[1:]}: {why}."
    if scale is not None:
        sentence += (f" {n} ranks decode at ×{scale.speedup:.2f} the tok/s of one device "
                     f"(efficiency {scale.efficiency:.0%}, 95% CI {scale.efficiency_ci[0]:.0%}–"
                     f"{scale.efficiency_ci[1]:.0%}).")
    return DistVerdict(label=label, comm_share=comm, comm_basis=basis, host_share=host, sentence=sentence)


PIPELINE_NOTE = ("pipeline parallel: for one sequence the stages run one after another (rank N-1's layers, "
                 "then … rank 0's), so decode cannot beat one device; it spreads the weights' memory")
BUILD_NOTE = "each rank builds the whole model, then keeps its shard (peak memory at build time is the whole model)"


def assemble(replies: List[RankReply], baseline: Optional[RankReply], parallel: str, launch: LaunchInfo,
             provenance) -> DistributedResult:
    """The result from every rank's reply (rank order) and the baseline's."""
    replies = sorted(replies, key=lambda r: r.rank)
    ranks = [summarize_rank(r) for r in replies]
    base = summarize_rank(baseline) if baseline is not None else None
    backend = replies[0].backend
    group = group_tok_s(ranks)
    scale = scaling(base, group, len(ranks)) if base is not None else None
    ids = [[run.token_ids for run in r.runs] for r in replies]
    notes = list(dict.fromkeys(n for r in replies for n in r.notes))
    notes += [BUILD_NOTE] + ([PIPELINE_NOTE] if parallel == "pipeline" else [])
    if any(not r.collectives.matches_graph for r in replies):
        notes.append("collectives: the calls seen while building a token differ from the graph's distributed "
                     "primitives (a call inside mx.compile or C++?); the counts per op are the calls seen")
    return DistributedResult(
        provenance=provenance, model=replies[0].model, settings=replies[0].settings, parallel=parallel,
        launch=launch, tok_s=stats.summarize(group), ranks=ranks,
        straggler=straggler(ranks, same_clock=len({r.host for r in replies}) == 1),
        baseline=base, scaling=scale, verdict=verdict(ranks, base, parallel, backend, scale),
        tokens_agree=all(x == ids[0] for x in ids), notes=notes,
    )
