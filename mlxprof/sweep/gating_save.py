"""A finished sweep's advice saved as this chip's gating decision (gating.py)."""

from typing import List, Optional

from ..errors import InputError
from .knobs import gating_value
from .result import SweepResult


def check_gating_file(path=None) -> None:
    """Before a sweep whose advice will be saved: the gating file in use (an
    explicit path, $MLXPROF_GATING_FILE or the per-user default) must be
    readable when it exists and writable; InputError otherwise, so a corrupt
    file is found before the points run, not after."""
    from .. import gating, results

    p = gating.gating_path(path)
    if p.exists():
        gating.load_rules(p)
    results.check_writable(p)


def save_gating(result: SweepResult, chip=None, path=None, source: Optional[str] = None) -> List[str]:
    """Record the recommendation as a per-chip gating decision, one per swept
    knob (value None = leave MLX's default). Returns the knobs saved."""
    from .. import gating  # imported only when asked for
    from .. import hardware

    if result.recommendation is None:
        raise InputError("no recommendation to save: the baseline has no measurements")
    if result.partial:
        raise InputError("the sweep is partial; finish it (--resume) before saving a gating decision")
    chip = chip or hardware.detect()
    rec = result.recommendation
    saved = []
    for name in result.knobs:
        if name in result.skipped:
            continue
        prov = dict(
            source="mlxprof sweep", result_file=str(source) if source else None, model=result.model_name,
            recommendation=rec.label, sentence=rec.sentence, ratio=rec.ratio,
            ci=[rec.ci_low, rec.ci_high] if rec.ci_low is not None else None, p_value=rec.p_value,
            reps=result.settings.reps, points=len(result.ok_points()), knobs=result.knobs,
            date=result.provenance.date, versions=result.provenance.versions,
        )
        gating.save_decision(chip, name, gating_value(name, rec.env.get(name)), prov, path=path)
        saved.append(name)
    return saved
