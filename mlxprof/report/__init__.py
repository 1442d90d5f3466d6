"""Decode-profile markdown documents, from fresh measurements or saved JSON.

    docs = measure(model, out)                # measure.py: run and save every result beside `out`
    docs = load_results(["a.json", …])        # or read saved results (`mlxprof report --from`)
    write(docs, out)                          # plots.py + markdown.py + reproduce.py → out

Sections render from the saved JSON results alone, so a document re-renders
without measuring; its Reproduce block is rebuilt from each result's recorded
command with paths relative to the document (reproduce.py).
"""

import importlib
from pathlib import Path
from typing import Dict, Optional

from pydantic import ValidationError

from .. import results
from ..errors import InputError
from . import markdown, reproduce
from . import plots as figures  # `render` and `write` take a `plots` flag
from .measure import measure

__all__ = ["measure", "load_results", "render", "write"]

# kind → (module, class) of the results a document has a section for
RESULT_CLASSES = {
    "decode": ("decode", "DecodeResult"), "ops": ("ops", "OpsResult"), "floor": ("floor", "FloorResult"),
    "sweep": ("sweep", "SweepResult"), "vlm": ("vlm", "VLMResult"), "compare": ("compare", "CompareResult"),
    "parity": ("parity", "ParityResult"), "depth": ("depth", "DepthResult"),
    "distributed": ("distributed.result", "DistributedResult"),
}


def _check(data: dict, path) -> None:
    """Refuse a result whose fields are missing or of the wrong type (strict:
    no "12.3" for a number), so rendering never meets a KeyError."""
    kind = data["kind"]
    module, name = RESULT_CLASSES[kind]
    cls = getattr(importlib.import_module(f"mlxprof.{module}"), name)
    try:
        cls.model_validate(data, strict=True)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise InputError(f"{path}: invalid {kind} result: {where}: {err['msg']}")


def load_results(paths) -> Dict[str, dict]:
    """Saved results keyed by kind (one each), checked against their schema;
    `_files` maps each kind to the path it was read from."""
    docs, files = {}, {}
    for p in paths:
        d = results.load_any(p)
        if d["kind"] not in RESULT_CLASSES:
            raise InputError(f"{p}: a '{d['kind']}' result has no report section")
        if d["kind"] in docs:
            raise InputError(f"{p}: a second '{d['kind']}' result; a report takes one of each kind")
        _check(d, p)
        docs[d["kind"]] = d
        files[d["kind"]] = str(p)
    _one_model(docs, files)
    return {**docs, "_files": files}


def _one_model(docs: Dict[str, dict], files: Dict[str, str]):
    """A document describes one model: results of different models are refused
    (compare holds a family, so it is checked against its variants)."""
    seen = {}
    for kind, d in docs.items():
        names = ({v["model"]["name"] for v in d.get("variants", [])} if kind == "compare"
                 else {d.get("model", {}).get("name")} - {None})
        for other, name in seen.items():
            if names and name not in names:
                raise InputError(f"{files[kind]} measured {', '.join(sorted(names))} but {files[other]} "
                                 f"measured {name}: a report describes one model (render them separately)")
        if kind != "compare" and names:
            seen[kind] = next(iter(names))


def render(docs: Dict[str, dict], title: Optional[str] = None, out_dir: Optional[Path] = None,
           plots: bool = True, stem: Optional[str] = None) -> str:
    """Markdown for a set of results keyed by kind (one each). With `out_dir`,
    the plots are drawn there (named `STEM-…png`) and the Reproduce block's
    paths are relative to it."""
    if "decode" not in docs:
        raise InputError("a report needs a decode result (mlxprof decode --json …)")
    stem = stem or docs["decode"]["model"]["name"].replace("/", "_")
    drawn, why_not = {}, None
    if plots:
        why_not = figures.skipped()
        if out_dir is not None and not why_not:
            drawn = figures.draw(docs, Path(out_dir), stem)
    doc_dir = Path(out_dir) if out_dir is not None else Path(".")
    lines = reproduce.block(docs, markdown.ORDER, doc_dir, doc_dir / f"{stem}.md")
    return markdown.document(docs, drawn, lines, title=title, plots_skipped=why_not)


def write(docs: Dict[str, dict], out: Path, plots: bool = True) -> Path:
    """Render `docs` to the markdown file `out`, plots beside it named after it."""
    out = Path(out)
    results.check_writable(out)
    md = render(docs, out_dir=out.parent, plots=plots, stem=out.stem)
    results.write_text_atomic(out, md)
    return out
