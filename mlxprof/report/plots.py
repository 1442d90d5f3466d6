"""The document's PNG plots (matplotlib, the optional `plot` extra).

Each plot is written beside the document and named after it; without
matplotlib nothing is drawn and `skipped()` gives the line the document says.
"""

from pathlib import Path
from typing import Callable, Dict, Optional


def skipped() -> Optional[str]:
    """Why no plot can be drawn here, or None when matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (`pip install 'mlxprof[plot]'`)"
    return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def latency_plot(d: dict, path: Path) -> str:
    """Per-token latency over the best run, build / submit / wait stacked."""
    plt = _pyplot()
    run = max(d["runs"], key=lambda r: r["tok_s"])
    x = list(range(len(run["token_ms"])))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.stackplot(x, run["build_ms"], run["submit_ms"], run["wait_ms"], labels=["build", "submit", "wait"], alpha=0.8)
    ax.plot(x, run["token_ms"], color="black", lw=0.8, label="token")
    ax.set_xlabel("measured token")
    ax.set_ylabel("ms")
    ax.set_title(f"{d['model']['name']} on {d['provenance']['chip']}: per-token latency (best run)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def sweep_plot(d: dict, path: Path) -> str:
    """tok/s per knob value, as `SweepResult.plot` draws it."""
    from .. import sweep

    plt = _pyplot()
    fig = sweep.SweepResult.model_validate(d).plot()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def depth_plot(d: dict, path: Path) -> str:
    """Decode tok/s (median, MAD bars) and floor tok/s against the KV depth."""
    plt = _pyplot()
    pts = sorted(d["points"], key=lambda x: x["depth"])
    xs = [x["depth"] for x in pts]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.errorbar(xs, [x["tok_s"]["median"] for x in pts], yerr=[x["tok_s"]["mad"] for x in pts], marker="o",
                capsize=3, label="decode tok/s (median ± MAD)")
    floor = [(x["depth"], x["floor_tok_s"]) for x in pts if x.get("floor_tok_s")]
    if floor:
        ax.plot(*zip(*floor), marker="s", ls="--", label="floor tok/s (weights + KV read)")
    positive = [x for x in xs if x > 0]
    if positive:  # depth 0 has no place on a log axis: linear up to the first positive depth
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("depth (tokens in the KV cache before decoding)")
    ax.set_ylabel("tok/s")
    ax.set_title(f"{d['model']['name']} on {d['provenance']['chip']}: decode at depth")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


PLOTS: Dict[str, Callable] = {"decode": latency_plot, "sweep": sweep_plot, "depth": depth_plot}
SUFFIX = {"decode": "latency", "sweep": "sweep", "depth": "depth"}  # file name after the document's stem


def draw(docs: Dict[str, dict], out_dir: Path, stem: str) -> Dict[str, str]:
    """Every plot the results allow, as {result kind: file name}; {} without matplotlib."""
    if skipped():
        return {}
    return {kind: fn(docs[kind], Path(out_dir) / f"{stem}-{SUFFIX[kind]}.png")
            for kind, fn in PLOTS.items() if kind in docs}
