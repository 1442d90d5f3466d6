"""A sweep's speedups as a matplotlib figure (the optional `mlxprof[plot]` extra)."""


def speedup_figure(result, ax=None):
    """Speedup vs value with 95% CI error bars, one marker per value coloured
    by verdict; returns the figure."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("SweepResult.plot() needs matplotlib: pip install 'mlxprof[plot]'") from None
    rows = [r for r in result.rows if r.ratio is not None]
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.0))
    else:
        fig = ax.figure
    colors = {"significant gain": "tab:green", "regression": "tab:red", "baseline": "black"}
    for i, r in enumerate(rows):
        lo, hi = (r.ci_low, r.ci_high) if r.ci_low is not None else (r.ratio, r.ratio)
        ax.errorbar([i], [r.ratio], yerr=[[r.ratio - lo], [hi - r.ratio]], fmt="o", capsize=4,
                    color=colors.get(r.verdict, "tab:gray"))
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xticks(range(len(rows)))
    many = len(rows) > 5
    ax.set_xticklabels([r.label for r in rows], rotation=30 if many else 0, ha="right" if many else "center")
    ax.set_ylabel(f"tok/s vs {result.baseline} (×, 95% CI)")
    swept = [k for k in result.knobs if k not in result.skipped]
    ax.set_xlabel(swept[0] if len(swept) == 1 else "variant")
    ax.set_title(f"{result.model_name} on {result.provenance.chip} ({result.provenance.backend}), "
                 f"{result.settings.reps} reps", fontsize=10)
    fig.tight_layout()
    return fig
