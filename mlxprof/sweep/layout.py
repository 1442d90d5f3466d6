"""Laying out a sweep before anything runs: every input checked, knobs the
backend ignores skipped, the settings to run; and whether a saved sweep is the
same layout (so `resume=` may continue it)."""

import os
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import InputError
from .knobs import KnobSetting, backend_skip, grid, unknown_knob_warning, validate_knob
from .result import SweepResult, SweepSettings
from .runner import DEFAULT_TIMEOUT_S


def plan(model, knob=None, values=None, knobs=None, variants=None, reps=3, runs=None, warmup=None,
         tokens=None, prompt_tokens=None, weights="auto", dtype=None, timeout=DEFAULT_TIMEOUT_S,
         force=False, backend=None):
    """Validate everything and lay out the sweep; nothing is run. Returns
    (knobs, skipped, settings, baseline, sweep_settings, notes)."""
    from ..decode import validate_counts
    from ..models import resolve
    from ..session import check_positions

    if (knob is not None) + (knobs is not None) + (variants is not None) != 1:
        raise InputError("give exactly one of knob= (with values=), knobs={name: values} or variants=")
    if knob is not None:
        knobs = {knob: values}
    elif values is not None:
        raise InputError("values= goes with knob=")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise InputError(f"--reps must be a positive integer, not {reps}")
    validate_counts(runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens)
    if timeout is not None and not timeout > 0:
        raise InputError(f"--timeout must be positive seconds, not {timeout}")
    if variants is None:
        knobs, skipped, settings, baseline, notes = knob_grid(knobs, backend, force)
    else:
        settings, baseline = explicit_settings(variants)
        knobs, skipped, notes = {}, {}, []
    if len(settings) < 2:
        raise InputError("one value only: a sweep needs the default and at least one other value")
    # fast: an unknown model, or counts beyond its positions, fail here, before any worker starts
    check_positions(resolve(model, weights), dict(warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens))
    sweep_settings = SweepSettings(reps=reps, runs=runs, warmup=warmup, tokens=tokens, prompt_tokens=prompt_tokens,
                                   weights=weights, dtype=dtype, timeout_s=timeout, force=force)
    return knobs, skipped, settings, baseline, sweep_settings, notes


def knob_grid(knobs: Optional[Dict[str, Sequence]], backend: Optional[str], force: bool):
    """Checked knobs → (knobs, skipped, settings, baseline, notes); knobs this
    backend does not read are skipped unless `force`."""
    if not knobs:
        raise InputError("no knobs to sweep")
    notes = []
    checked = {}
    for name, vals in knobs.items():
        checked[name] = validate_knob(name, vals)
        w = unknown_knob_warning(name)
        if w:
            notes.append(w)
    if backend is None:
        from ..hardware import backend_name

        backend = backend_name()
    skipped = {}
    for name in checked:
        why = backend_skip(name, backend)
        if why and not force:
            skipped[name] = why + "; skipped (force=True / --force sweeps it anyway)"
        elif why:
            notes.append(why + "; swept anyway (--force)")
    live = {k: v for k, v in checked.items() if k not in skipped}
    if not live:
        raise InputError("nothing to sweep: " + "; ".join(backend_skip(k, backend) for k in skipped)
                         + "; pass --force (force=True) to sweep it anyway")
    settings, baseline, more = grid(live)
    notes += more
    for name in live:
        if name in os.environ:
            notes.append(f"{name}={os.environ[name]} is set in this environment; its 'default' points unset it")
    return checked, skipped, settings, baseline, notes


def explicit_settings(variants: Sequence) -> Tuple[List[KnobSetting], str]:
    """`[(label, env), …]` or KnobSettings → (settings, baseline = the first label)."""
    settings = [v if isinstance(v, KnobSetting) else KnobSetting(label=v[0], env=dict(v[1])) for v in variants]
    if len(settings) < 2:
        raise InputError("variants= needs at least two variants (the first is the baseline)")
    labels = [v.label for v in settings]
    if len(set(labels)) != len(labels):
        raise InputError(f"variant labels must be distinct: {labels}")
    return settings, settings[0].label


def layout_differences(old: SweepResult, new: SweepResult) -> List[str]:
    """How a saved sweep's layout differs from a new one's (empty: the same sweep)."""
    diff = []
    if old.model_name != new.model_name:
        diff.append(f"model {old.model_name} vs {new.model_name}")
    if old.knobs != new.knobs or [v.model_dump() for v in old.variants] != [v.model_dump() for v in new.variants]:
        diff.append(f"knobs {old.knobs} vs {new.knobs}")
    for f in ("reps", "runs", "warmup", "tokens", "prompt_tokens", "weights", "dtype"):
        a, b = getattr(old.settings, f), getattr(new.settings, f)
        if a != b:
            diff.append(f"{f.replace('_', '-')} {a} vs {b}")
    return diff
