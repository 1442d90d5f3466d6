"""Small saved-result objects built in memory, with samples chosen by the test
(for diff and --format tests that need no measurement)."""

import json
import shutil
from pathlib import Path

from mlxprof import decode, results
from mlxprof.results import ModelIdentity, Provenance

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "benchmark_results"


def provenance(chip="Test CPU [x86_64]", backend="cpu", mlx="0.32.4", knobs=None, command="mlxprof decode"):
    return Provenance(backend=backend, device={}, chip=chip, knobs=knobs or {}, python="3.11.7",
                      versions={"mlx": mlx, "mlx-lm": "0.32.2", "mlx-vlm": "0.7.10", "mlxprof": "0.1.0"},
                      platform="Linux x86_64", date="2026-01-01T00:00:00+00:00", command=command)


def identity(weights="synthetic", name="test-model"):
    return ModelIdentity(name=name, weights=weights, quantization="4bit", group_size=64, dtype="float32",
                         num_layers=2, parameters=1000, bytes_per_token=5000)


def run_record(tok_s, tokens=10, build=1.0, i=0):
    """One run at `tok_s`, its tokens ±2% around 1/tok_s; build `build` ms (+1% per run index)."""
    token_ms = 1e3 / tok_s
    wobble = [(k % 5 - 2) * 0.01 for k in range(tokens)]
    b = [build * (1 + 0.01 * i) * (1 + w) for w in wobble]
    return decode.RunRecord(
        prompt_tokens=4, warmup=2, tokens=tokens, prefill_s=0.1 + 0.001 * i, tok_s=tok_s,
        build_ms=b, submit_ms=[0.5 * (1 + w) for w in wobble], wait_ms=[0.1] * tokens,
        token_ms=[token_ms * (1 + w) for w in wobble], t0=0.0,
        deliveries_s=[k * token_ms / 1e3 for k in range(tokens)], peak_memory_bytes=1000 + i,
        token_ids=[7] * (tokens + 2))


def decode_result(tok_s, tokens=10, build=1.0, weights="synthetic", **prov) -> decode.DecodeResult:
    runs = [run_record(t, tokens, build, i) for i, t in enumerate(tok_s)]
    tok, pre, split, verdict = decode.summarize_runs(runs, "cpu")
    return decode.DecodeResult(
        provenance=provenance(**prov), model=identity(weights),
        settings=decode.DecodeSettings(runs=len(runs), warmup=2, tokens=tokens, prompt_tokens=4, dtype="float32"),
        tok_s=tok, prefill_tok_s=pre, split=split, verdict=verdict, peak_memory_bytes=1000, runs=runs)


def save(result, path) -> Path:
    results.save(result, path)
    return Path(path)


def published(name, to: Path, edit=None) -> Path:
    """A copy of a published result in `to`, changed by `edit(data)` when given."""
    out = Path(to) / name
    if edit is None:
        shutil.copy(PUBLISHED / name, out)
        return out
    data = json.loads((PUBLISHED / name).read_text())
    edit(data)
    out.write_text(json.dumps(data))
    return out
