"""Open a model for measuring, the one way every command does it.

validate the input → detect the chip → resolve `--model` → memory preflight
→ load (real) or build (synthetic) → identity → prompt ids. The CLI, the
notebook API, the sweep worker and the benches all call `open_session`; no
other module repeats the sequence.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from . import hardware, results
from .errors import InputError

SYNTHETIC_NOTE = "weights: synthetic (published architecture, random values)"


@dataclass
class Session:
    """A loaded model and what a measurement needs to know about it."""

    chip: "hardware.Chip"
    model: "object"  # models.Loaded: logits(ids, cache), make_cache(), vocab_size, text
    identity: "results.ModelIdentity"
    notes: List[str] = field(default_factory=list)  # what a reader must know (synthetic, dtype change)
    dtype_reason: Optional[str] = None

    @property
    def backend(self) -> str:
        return self.chip.backend

    @property
    def synthetic(self) -> bool:
        return self.identity.weights == "synthetic"

    def prompt(self, n: int, text: Optional[str] = None) -> List[int]:
        """`text` tokenized by the checkpoint's tokenizer, else n deterministic ids."""
        from . import decode as dec

        if text is None:
            return dec.default_prompt(n, self.model.vocab_size)
        return list(self.model.tokenizer().encode(text))  # loaded now, only when text needs it

    def plan(self, runs=None, warmup=None, tokens=None, prompt_tokens=None, prompt=None):
        """Decode counts for this backend and model size (`decode.plan_settings`)."""
        from . import decode as dec

        return dec.plan_settings(self.backend, self.identity.bytes_per_token, runs, warmup, tokens,
                                 prompt_tokens, prompt, dtype=self.model.dtype,
                                 dtype_reason=self.dtype_reason)

    def kv_bytes(self, context: int) -> int:
        """K and V bytes one decode token reads with `context` tokens of history
        (sliding-window and KV-shared layers accounted), at the activation dtype."""
        import mlx.core as mx

        from .models.weights import kv_cache_bytes

        return kv_cache_bytes(self.model, context, getattr(mx, self.model.dtype).size)

    def provenance(self, command: Optional[str] = None) -> "results.Provenance":
        return results.provenance(command, chip=self.chip)


def check_outputs(*paths):
    """Fail before any work when an output file cannot be written, when it
    already holds a saved result (a measurement is never replaced unasked), or
    when two outputs would land in one file (the second would replace the first)."""
    import os

    from .sweep.guard import result_kind

    seen = {}
    for p in paths:
        if p is None:
            continue
        results.check_writable(p)
        kind = result_kind(p) if os.path.isfile(p) else None
        if kind is not None:
            raise InputError(f"{p} already holds a saved '{kind}' result; pick another file name (or remove "
                             "it first): mlxprof never replaces a measurement")
        real = os.path.realpath(p)
        if real in seen:
            raise InputError(f"{seen[real]} and {p} are the same file: one output would replace the other")
        seen[real] = p


def check_positions(target, counts: Dict[str, Optional[int]]) -> None:
    """prompt + warm-up + measured tokens must fit the model's positions
    (max_position_embeddings of the resolved config); counts not given count
    at their defaults. Only checked when one of them was given."""
    from . import decode as dec
    from .ops import max_context

    names = ("prompt_tokens", "warmup", "tokens")
    if all(counts.get(k) is None for k in names):
        return
    limit = max_context(target)
    need = sum(counts[k] if counts.get(k) is not None else dec.DEFAULTS[k] for k in names)
    if limit is not None and need + 1 > limit:  # + the step after each run (decode.logits_finite)
        raise InputError(f"--prompt-tokens + --warmup + --tokens = {need} positions, but the model holds "
                         f"{limit} (max_position_embeddings) and one more step checks each run; ask for at "
                         f"most {limit - 1} in all")


def open_session(
    model: str,
    weights: str = "auto",
    dtype: Optional[str] = None,
    *,
    counts: Optional[Dict[str, Optional[int]]] = None,
    outputs: Sequence[Optional[str]] = (),
    check: Optional[Callable] = None,
    chip=None,
) -> Session:
    """Validate `counts` and `outputs`, resolve `model`, run `check(target)`
    (a command's own checks that need the resolved model but no weights),
    then preflight and load. Everything cheap fails before anything is built."""
    from . import decode as dec
    from . import models

    if counts:
        dec.validate_counts(**counts)
    check_outputs(*outputs)
    target = models.resolve(model, weights)
    if counts:
        check_positions(target, counts)
    if check is not None:
        check(target)
    chip = chip or hardware.detect()
    loaded, reason = models.prepare_target(target, dtype, chip)
    ident = models.identity(loaded)
    notes = [SYNTHETIC_NOTE] if ident.weights == "synthetic" else []
    return Session(chip=chip, model=loaded, identity=ident, notes=notes, dtype_reason=reason)
