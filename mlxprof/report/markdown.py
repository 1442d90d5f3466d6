"""Decode-profile markdown documents, from fresh measurements or saved JSON.

A document has a provenance table, the headline, the pipeline split with its
verdict, and one section per result kind that was measured (ops, floor,
sweep, vlm, compare, parity, GPU timeline), then the exact commands that
reproduce every table. Sections render from the saved JSON results alone, so
`mlxprof report --from a.json --from b.json` re-renders without measuring.
"""

import datetime as _dt
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import results
from .errors import InputError
from .render import fmt_bytes as _gb

SECTIONS: Dict[str, Callable] = {}  # kind → renderer(data, ctx) → markdown
ORDER = ["decode", "gpu", "floor", "ops", "sweep", "vlm", "compare", "parity"]


def section(kind):
    def deco(fn):
        SECTIONS[kind] = fn
        return fn

    return deco


def _f(x, d=1):
    return "–" if x is None else f"{x:.{d}f}"


def _gbs(x):
    return f"{x:.0f} GB/s" if x >= 100 else f"{x:.2g} GB/s"


def _table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def provenance_table(d: dict) -> str:
    p = d["provenance"]
    m = d.get("model") or {}
    v = p["versions"]
    rows = [
        ["chip", p["chip"]],
        ["backend", p["backend"]],
        ["device_info", ", ".join(f"{k}={val}" for k, val in p["device"].items())],
        ["MLX / mlx-lm / mlx-vlm", f"{v.get('mlx')} / {v.get('mlx-lm')} / {v.get('mlx-vlm')}"],
        ["mlxprof", str(v.get("mlxprof"))],
        ["model", f"{m.get('name')} ({m.get('quantization')}, {m.get('num_layers')} layers)"],
        ["weights", "**synthetic** (published architecture, random values)" if m.get("weights") == "synthetic"
         else f"real ({m.get('path') or m.get('repo_id')})"],
        ["dtype", str(m.get("dtype"))],
        ["knobs in force", ", ".join(f"{k}={val}" for k, val in p["knobs"].items()) or "none"],
        ["python / platform", f"{p['python']} / {p['platform']}"],
        ["date", p["date"]],
    ]
    return _table(["", ""], rows)


@section("decode")
def decode_section(d, ctx):
    s, ts, st = d["split"], d["tok_s"], d["settings"]
    lines = ["## Decode speed", ""]
    lines.append(
        f"**{ts['median']:.2f} tok/s median** (best {ts['best']:.2f}, MAD {ts['mad']:.2f}, "
        f"σ {ts['stdev']:.2f}, n = {ts['n']}); samples: " + ", ".join(f"{x:.2f}" for x in ts["samples"]) + "."
    )
    lines.append("")
    lines.append(
        f"Each run: fresh cache, {st['prompt_tokens']}-token prompt, {st['warmup']} warm-up tokens, "
        f"{st['tokens']} measured tokens, greedy; tok/s = (tokens − 1) / (t_last − t_first). "
        f"Prefill: {d['prefill_tok_s']['median']:.1f} tok/s median. Peak memory {_gb(d['peak_memory_bytes'])}."
    )
    for note in st.get("reduced", []):
        lines.append(f"\n> {note}")
    lines += ["", "## Where each token's time goes", ""]
    tok = s["token_ms"]
    rows = [[ph, f"{s[ph + '_ms']:.3f}", f"{s[ph + '_ms'] / tok:.0%}" if tok else "–"]
            for ph in ("build", "submit", "wait")]
    rows.append(["unattributed", f"{s['unattributed_ms']:.3f}", f"{s['unattributed_ms'] / tok:.0%}" if tok else "–"])
    rows.append(["**token**", f"**{tok:.3f}**", "100%"])
    lines.append(_table(["phase", "median ms", "share"], rows))
    lines += ["", f"**Verdict: {d['verdict']['label']}.** {d['verdict']['sentence']}", ""]
    mb = d["model"]["bytes_per_token"]
    lines.append(f"Weights streamed per token: {_gb(mb)} → {mb / (tok / 1e3) / 1e9:.1f} GB/s effective at the median token time.")
    if ctx.get("plots", {}).get("latency"):
        lines += ["", f"![per-token latency]({ctx['plots']['latency']})"]
    return "\n".join(lines)


@section("gpu")
def gpu_section(g, ctx):
    lines = ["## The GPU's own timeline (CUPTI)", ""]
    lines.append(
        f"GPU busy **{g['busy_fraction']:.0%}** of the measured wall time (union of kernel intervals, "
        f"{g['runs']} traced runs); GPU {g['gpu_ms_per_token']['median']:.2f} ms per token busy, "
        f"{g['kernels_per_token']:.0f} kernels per token, {g['graph_kernel_share']:.0%} launched from CUDA graphs."
    )
    if g.get("overhead"):
        o = g["overhead"]
        lines.append(f"\nTracing cost: traced vs untraced tok/s ×{o['ratio']:.3f} "
                     f"(95% CI {o['ci_low']:.3f}–{o['ci_high']:.3f}; {o['verdict']}).")
    lines += ["", _table(["primitive", "kernels/token", "ms/token", "share of kernel time"],
                         [[p["primitive"], f"{p['count_per_token']:.0f}", f"{p['ms_per_token']:.3f}",
                           f"{p['share']:.0%}"] for p in g["by_primitive"][:10]])]
    top = g["top_kernels"][:10]
    if top:
        keys = [k for k in ("name", "primitive", "count_per_token", "ms_per_token") if k in top[0]]
        lines += ["", "Top kernels by total time:", "",
                  _table(keys, [[(f"{k[c]:.3f}" if isinstance(k[c], float) else str(k[c])[:60]) for c in keys]
                                for k in top])]
    if g.get("method"):
        lines += ["", f"_{g['method']}_"]
    return "\n".join(lines)


@section("sweep")
def sweep_section(d, ctx):
    from . import gating, hardware, render, sweep

    r = sweep.SweepResult.model_validate(d)
    lines = ["## Scheduler knob sweep", "", "Every point in a fresh process (MLX reads the buffer variables once, "
             "when its device is created), values interleaved round-robin.", "", render.sweep_markdown(r)]
    chip = hardware.detect(device_info=d["provenance"]["device"], backend=d["provenance"]["backend"])
    recs = gating.recommend(chip)
    lines += ["Gating table for this chip family "
              f"(`{chip.family}`):", "",
              _table(["knob", "recommended", "reason"],
                     [[x.knob, x.value or "MLX default", x.reason] for x in recs])]
    if ctx.get("plots", {}).get("sweep"):
        lines += ["", f"![sweep]({ctx['plots']['sweep']})"]
    return "\n".join(lines)


def sweep_plot(d, path):
    from . import sweep

    try:
        import matplotlib

        matplotlib.use("Agg")
        fig = sweep.SweepResult.model_validate(d).plot()
    except ImportError:
        return None
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


@section("vlm")
def vlm_section(d, ctx):
    b, v = d["breakdown"], d["vision"]
    rows = [[name, f"{st['median_s'] * 1e3:.2f}", f"{st['stdev_s'] * 1e3:.2f}", f"{st['max_dev_s'] * 1e3:.2f}",
             f"{st['share']:.0%}"] for name, st in b["stages"].items()]
    t = b["ttft"]
    rows.append(["**TTFT**", f"**{t['median_s'] * 1e3:.2f}**", f"{t['stdev_s'] * 1e3:.2f}",
                 f"{t['max_dev_s'] * 1e3:.2f}", "100%"])
    tr, ir = d["text"], d["image"]
    cmp_ = d["decode_comparison"]
    lines = [
        "## Image prompt: time to first token", "",
        f"Image {v.get('image_size')}×{v.get('image_size')} → {v.get('soft_tokens')} soft tokens; vision weights "
        f"{v.get('weights', 'synthetic')}. Stages timed sequentially (mx.eval between stages), "
        f"{b['runs']} runs after {b['warmup']} warm-ups.", "",
        _table(["stage", "median ms", "stddev ms", "max dev ms", "share"], rows), "",
        "## Text vs image prompt", "",
        _table(["prompt", "tokens", "prefill tok/s", "TTFT ms", "decode tok/s"],
               [[r["prompt"], str(r["prompt_tokens"]), f"{r['prefill_tok_s']['median']:.1f}",
                 f"{r['ttft_s']['median'] * 1e3:.1f}", f"{r['tok_s']['median']:.2f} ± {r['tok_s']['mad']:.2f}"]
                for r in (tr, ir)]), "",
        f"Decode, image vs text: ×{cmp_['ratio']:.3f} (95% CI {cmp_['ci_low']:.3f}–{cmp_['ci_high']:.3f}): "
        f"{cmp_['verdict']}.",
    ]
    lines += [f"\n_note: {n}_" for n in d.get("notes", []) if "synthetic" not in n]
    return "\n".join(lines)


@section("ops")
def ops_section(d, ctx):
    lines = ["## What one decode token's graph holds", "",
             f"One decode step at KV context {d['context']} (exported with `mx.export_to_dot` before "
             f"evaluation): **{d['nodes']} nodes**" + (" (this step grows the KV cache)" if d["kv_growth"] else "")
             + ". By class: " + ", ".join(f"{k} {v}" for k, v in d["classes"].items()) + ".", ""]
    top = list(d["histogram"].items())[:15]
    lines.append(_table(["op", "count", "class"], [[op, str(n), d["op_class"].get(op, "")] for op, n in top]))
    for m in d["matvec"]:
        ok = "matches" if m["expected"] == m["found"] else "DIFFERS"
        lines.append(f"\nSanity: {m['op']} nodes on weights: expected {m['expected']} from the architecture, "
                     f"found {m['found']} ({ok}; {m['nodes']} {m['op']} nodes in all).")
    if d.get("compiled_inner"):
        lines.append("\nFused inside Compiled nodes: "
                     + ", ".join(f"{k} {v}" for k, v in list(d["compiled_inner"].items())[:10]) + ".")
    return "\n".join(lines)


@section("floor")
def floor_section(d, ctx):
    fm = d["floor_ms"]
    lines = ["## Weight-streaming floor", "",
             f"A graph of only the {d['matvecs']} matrix-vector products one token performs, over the weights it "
             f"streams ({_gb(d['bytes_per_token'])}), evaluated once per token: **{fm['median']:.3f} ms** "
             f"median (best {fm['best']:.3f}) → {_gbs(d['gb_s'])}, floor {d['floor_tok_s']:.0f} tok/s.", "",
             _table(["weights", "matvecs", "bytes"], [[g["kind"], str(g["matvecs"]), _gb(g["bytes"])] for g in d["groups"]])]
    if d.get("probe"):
        lines.append(f"\nDevice copy probe: {_gbs(d['probe']['gb_s'])} (read + write).")
    lines.append(f"\n**{d['sentence']}**")
    return "\n".join(lines)


@section("compare")
def compare_section(d, ctx):
    rows = []
    for v in d["variants"]:
        sp = v["split"]
        rows.append([v["bits"], f"{v['tok_s']['median']:.2f} ± {v['tok_s']['mad']:.2f}", f"{v['tok_s']['best']:.2f}",
                     f"{sp['build_ms']:.2f} / {sp['submit_ms']:.2f} / {sp['wait_ms']:.2f}", _gb(v["bytes_per_token"]),
                     f"{v['floor_ms']['median']:.3f}" if v.get("floor_ms") else "–",
                     f"{v['floor_gb_s']:.0f}" if v.get("floor_gb_s") else "–", v["verdict"]["label"]])
    lines = ["## Bits comparison", "", f"Variants run {d['order']}.", "",
             _table(["weights", "tok/s median ± MAD", "best", "build / submit / wait ms", "bytes/token",
                     "floor ms", "GEMV GB/s", "verdict"], rows), ""]
    lines += [f"- {c['candidate']} vs {c['baseline']}: ×{c['ratio']:.3f} (95% CI {c['ci_low']:.3f}–{c['ci_high']:.3f}, "
              f"p = {c['p_value']:.3g}): {c['verdict']}" for c in d["comparisons"]]
    lines += ["", f"**{d['sentence']}**"]
    return "\n".join(lines)


@section("parity")
def parity_section(d, ctx):
    c, st = d["comparison"], d["settings"]
    rows = [[loop, f"{x['median']:.2f}", f"{x['mad']:.2f}", f"{x['best']:.2f}", str(x["n"])]
            for loop, x in d["tok_s"].items()]
    return "\n".join([
        "## Parity with mlx-vlm's own loop", "",
        f"{st['rounds']} interleaved rounds, {st['warmup']} warm-up + {st['tokens']} measured tokens, "
        "tok/s computed the same way for both loops.", "",
        _table(["loop", "median tok/s", "MAD", "best", "n"], rows), "",
        f"mlxprof / mlx-vlm: ×{c['ratio']:.3f} (95% CI {c['ci_low']:.3f}–{c['ci_high']:.3f}, "
        f"p = {c['p_value']:.3g}): {c['verdict']}. {d['tokens']['sentence']}",
    ])


def latency_plot(d: dict, path: Path) -> Optional[str]:
    """Per-token latency over the run, build / submit / wait stacked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
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


def render(docs: Dict[str, dict], title: Optional[str] = None, out_dir: Optional[Path] = None,
           plots: bool = True, stem: Optional[str] = None) -> str:
    """Markdown for a set of results keyed by kind (one each)."""
    if "decode" not in docs:
        raise InputError("a report needs a decode result (mlxprof decode --json …)")
    base = docs["decode"]
    if base.get("gpu") and "gpu" not in docs:
        docs = {**docs, "gpu": base["gpu"]}
    ctx = {"docs": docs, "plots": {}}
    if plots and out_dir is not None:
        stem = stem or _stem(base)
        ctx["plots"]["latency"] = latency_plot(base, out_dir / f"{stem}-latency.png")
        for kind, fn in PLOTS.items():
            if kind in docs:
                ctx["plots"][kind] = fn(docs[kind], out_dir / f"{stem}-{kind}.png")
    m, p = base["model"], base["provenance"]
    title = title or f"{m['name']} decode profile — {p['chip']} ({p['backend']})"
    parts = [f"# {title}", ""]
    if m["weights"] == "synthetic":
        parts.append("> Weights are **synthetic**: the published architecture with random values. Decode timing "
                     "does not depend on weight values, so this is a profiling proxy, not a quality run.\n")
    parts += ["## Provenance", "", provenance_table(base), ""]
    parts.append(headline(docs))
    for kind in ORDER:
        if kind in docs and kind in SECTIONS:
            parts += ["", SECTIONS[kind](docs[kind], ctx)]
    if plots and not _have_matplotlib():
        parts += ["", "_Plots skipped: matplotlib is not installed (`pip install 'mlxprof[plot]'`)._"]
    failures = docs.get("_failures") or []
    if failures:
        parts += ["", "## Not measured", ""] + [f"- {f}" for f in failures]
    parts += ["", "## Reproduce", "", "```bash"]
    if docs.get("_command"):
        parts += [f"# the whole document:", docs["_command"], "# each table:"]
    parts += [docs[k]["provenance"].get("command") or f"# ({k}: command not recorded)"
              for k in ORDER if k in docs and "provenance" in docs[k]]
    parts += ["```", "", f"_Generated by mlxprof on {_dt.date.today().isoformat()}; JSON results beside this file._", ""]
    return "\n".join(parts)


PLOTS: Dict[str, Callable] = {"sweep": sweep_plot}


def headline(docs) -> str:
    d = docs["decode"]
    ts = d["tok_s"]
    line = (f"**Headline:** {ts['median']:.2f} tok/s median ({ts['best']:.2f} best of {ts['n']}, "
            f"MAD {ts['mad']:.2f}); {d['verdict']['label']}")
    fl = docs.get("floor")
    if fl and fl.get("floor_tok_s"):
        floor_tok_s = fl["floor_tok_s"]
        line += f"; decode runs at {ts['median'] / floor_tok_s:.0%} of the weight-streaming floor ({floor_tok_s:.3g} tok/s)"
    return line + "."


def _have_matplotlib():
    try:
        import matplotlib  # noqa: F401

        return True
    except ImportError:
        return False


def _stem(d):
    return d["model"]["name"].replace("/", "_")


def load_results(paths) -> Dict[str, dict]:
    docs = {}
    for p in paths:
        d = results.load_any(p)
        if d["kind"] not in SECTIONS and d["kind"] != "decode":
            raise InputError(f"{p}: a '{d['kind']}' result has no report section")
        if d["kind"] in docs:
            raise InputError(f"{p}: a second '{d['kind']}' result; a report takes one of each kind")
        docs[d["kind"]] = d
    return docs


def write(docs: Dict[str, dict], out: Path, plots: bool = True) -> Path:
    out = Path(out)
    results.check_writable(out)
    md = render(docs, out_dir=out.parent, plots=plots, stem=out.stem)  # plots named after the document
    results.write_text_atomic(out, md)
    return out


# What a measuring report runs. Each step saves its JSON beside the document;
# a step that fails is noted in the document and the others still run.
QUICK = dict(runs=3, warmup=4, tokens=24, prompt_tokens=8, rounds=4, reps=2, sweep_values="default,1000")
# None: each command's own defaults, which shrink on a slow backend and say so
FULL = dict(runs=None, warmup=None, tokens=None, prompt_tokens=None, rounds=None, reps=2,
            sweep_values="default,100,1000,2000")
SWEEP_COUNTS = dict(runs=2, warmup=10, tokens=50)  # per sweep point, GPU backends only
OPS_KNOB = "MLX_MAX_OPS_PER_BUFFER"


def _cmd(*parts):
    return " ".join(str(p) for p in parts if p is not None and p != "")


def _opts(**kw):
    """['--runs', 3, …] for the options that are set."""
    out = []
    for k, v in kw.items():
        if v is not None:
            out += [f"--{k.replace('_', '-')}", v]
    return out


def measure(model: str, out: Path, quick: bool = False, weights: str = "auto", dtype: Optional[str] = None,
            gpu_timeline: bool = False, image: Optional[str] = None, progress: bool = True,
            steps: Optional[List[str]] = None, bits: Optional[str] = None, log=print) -> Dict[str, dict]:
    """Run every measurement a report holds; return {kind: result dict}."""
    from . import hardware, profile
    from .models import resolve

    out = Path(out)
    results.check_writable(out)
    resolve(model, weights)  # bad model: one line, before anything runs
    if bits:
        from . import compare as cmp_

        cmp_.parse_bits(bits, cmp_.family_of(model))
    chip = hardware.detect()
    c = dict(QUICK if quick else FULL, dtype=dtype)
    stem = out.with_suffix("")
    steps = steps or ["decode", "ops", "floor", "sweep", "vlm", "parity"] + (["compare"] if bits else [])
    q = "--quick " if quick else ""
    docs, failures = {}, []

    def path(kind):
        return f"{stem}.{kind}.json"

    def step(kind, fn):
        if kind not in steps:
            return
        log(f"[report] {kind} …")
        try:
            r = fn(path(kind))
        except KeyboardInterrupt:
            raise
        except InputError as e:
            failures.append(f"{kind}: {e}")
            return
        except Exception as e:  # keep what was measured; say what was not
            failures.append(f"{kind}: {type(e).__name__}: {e}")
            return
        if r is not None:
            results.save(r, path(kind))
            docs[kind] = results.load_any(path(kind))

    counts = _opts(runs=c["runs"], warmup=c["warmup"], tokens=c["tokens"], prompt_tokens=c["prompt_tokens"])
    step("decode", lambda p: profile.decode(
        model, weights=weights, dtype=c["dtype"], runs=c["runs"], warmup=c["warmup"], tokens=c["tokens"],
        prompt_tokens=c["prompt_tokens"], progress=progress, gpu_timeline=gpu_timeline,
        command=_cmd("mlxprof decode --model", model, *counts, "--gpu-timeline" if gpu_timeline else "",
                     "--json", p)))
    for kind in ("ops", "floor"):
        fn = STEP_RUNNERS.get(kind)
        if fn:
            step(kind, lambda p, fn=fn, kind=kind: fn(model, weights, c, p, docs))
    if chip.backend == "cpu":
        notes_sweep = f"sweep skipped: the CPU backend does not read {OPS_KNOB}"
        failures.append(notes_sweep) if "sweep" in steps else None
    else:
        from . import sweep

        vals = c["sweep_values"]
        sc = dict(runs=2, warmup=2, tokens=8) if quick else SWEEP_COUNTS
        step("sweep", lambda p: sweep.run(
            model, OPS_KNOB, vals.split(","), reps=c["reps"], prompt_tokens=c["prompt_tokens"], weights=weights, dtype=c["dtype"],
            json_path=p, progress=progress, **sc,
            command=_cmd("mlxprof sweep --model", model, "--knob", f"{OPS_KNOB}={vals}", "--reps", c["reps"],
                         *_opts(**sc), "--json", p)))
    fn = STEP_RUNNERS.get("vlm")
    slow_vision = chip.backend == "cpu" and docs.get("decode", {}).get("model", {}).get("bytes_per_token", 0) > (200 << 20)
    if fn and slow_vision and image is None and "vlm" in steps:
        failures.append("vlm skipped: the real-size vision tower takes minutes per pass on the CPU backend; "
                        "pass --image to include it, or run `mlxprof vlm` separately")
    elif fn:
        step("vlm", lambda p: fn(model, weights, c, p, docs, image=image, quick=quick))
    if bits:
        from . import compare as cmp_

        fam = cmp_.family_of(model)
        step("compare", lambda p: cmp_.run(
            fam, bits=bits, weights=weights, dtype=c["dtype"], runs=c["runs"], warmup=c["warmup"], tokens=c["tokens"],
            prompt_tokens=c["prompt_tokens"], progress=progress,
            command=_cmd("mlxprof compare --model", fam, "--bits", bits, *counts, "--json", p)))
    from . import parity

    step("parity", lambda p: parity.parity(
        model, weights=weights, dtype=c["dtype"], rounds=c["rounds"], warmup=c["warmup"], tokens=c["tokens"],
        prompt_tokens=c["prompt_tokens"], progress=progress,
        command=_cmd("mlxprof parity --model", model, *_opts(rounds=c["rounds"], warmup=c["warmup"],
                     tokens=c["tokens"], prompt_tokens=c["prompt_tokens"]), "--json", p)))
    if "decode" not in docs:
        raise InputError("report: the decode measurement failed: " + "; ".join(failures))
    docs["decode"].setdefault("notes", [])
    docs["_failures"] = failures
    docs["_command"] = _cmd("mlxprof report --model", model, q.strip(), "--out", out)
    return docs


def _vlm_step(model, weights, c, path, docs, image=None, quick=False):
    from . import profile

    if image is None:  # a generated test card: no downloads, same every time
        image = str(Path(path).with_suffix("").with_suffix(".image.png"))
        _test_card(image)
    size = 64 if quick and docs.get("decode", {}).get("model", {}).get("alias", "").startswith("gemma3n-tiny") else None
    kw = dict(runs=2, warmup=c["warmup"], tokens=c["tokens"], ttft_runs=3, ttft_warmup=1,
              prompt_tokens=c["prompt_tokens"]) if quick else {}
    return profile.vlm(model, image, weights=weights, dtype=c["dtype"], image_size=size, **kw,
                       command=_cmd("mlxprof vlm --model", model, "--image", image,
                                    *_opts(image_size=size, **kw), "--json", path))


def _test_card(path):
    from PIL import Image

    img = Image.new("RGB", (256, 256))
    img.putdata([(x, y, (x * y) % 256) for y in range(256) for x in range(256)])
    img.save(path)


def _ops_step(model, weights, c, path, docs):
    from . import ops

    return ops.run(model, weights=weights, dtype=c["dtype"], command=_cmd("mlxprof ops --model", model, "--json", path))


def _floor_step(model, weights, c, path, docs):
    """The floor against the decode just measured (no second decode)."""
    from . import floor

    dpath = str(Path(path).with_suffix("").with_suffix(".decode.json"))
    have = "decode" in docs
    return floor.run(model, weights=weights, dtype=c["dtype"], decode_path=dpath if have else None, no_decode=not have,
                     command=_cmd("mlxprof floor --model", model, "--decode" if have else "--no-decode",
                                  dpath if have else "", "--json", path))


STEP_RUNNERS: Dict[str, Callable] = {"vlm": _vlm_step, "ops": _ops_step, "floor": _floor_step}
