"""Terminal tables (rich) for results."""

from rich.console import Console
from rich.table import Table


def _gb(x):
    return f"{x / 1e9:.2f} GB"


def decode_table(r, console=None):
    console = console or Console()
    p, m, s = r.provenance, r.model, r.split
    t = Table(title=f"mlxprof decode — {m.name}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("model", f"{m.name} ({m.quantization}, {m.num_layers} layers, {m.parameters / 1e9:.2f} B params)")
    t.add_row("weights", m.weights + (" (random values, published architecture)" if m.weights == "synthetic" else ""))
    t.add_row("backend / chip", f"{p.backend} / {p.chip}")
    t.add_row("dtype", m.dtype)
    st = r.settings
    t.add_row("tokens", f"{st.runs} runs × ({st.prompt_tokens} prompt, {st.warmup} warm-up, {st.tokens} measured)")
    ts = r.tok_s
    t.add_row("tok/s", f"best {ts.best:.2f}   median {ts.median:.2f} ± {ts.mad:.2f} MAD (σ {ts.stdev:.2f}, n={ts.n})")
    t.add_row("tok/s samples", ", ".join(f"{x:.2f}" for x in ts.samples))
    t.add_row("prefill", f"{r.prefill_tok_s.median:.1f} tok/s median")
    split = "   ".join(
        f"{ph} {getattr(s, ph + '_ms'):.2f} ms ({s.share(ph):.0%})" for ph in ("build", "submit", "wait")
    )
    t.add_row("per token", f"{s.token_ms:.2f} ms: {split}   rest {s.unattributed_ms:.2f} ms")
    t.add_row("verdict", r.verdict.sentence)
    t.add_row("bytes/token", f"{_gb(m.bytes_per_token)} streamed → {m.bytes_per_token / (s.token_ms / 1e3) / 1e9:.1f} GB/s effective")
    t.add_row("peak memory", _gb(r.peak_memory_bytes))
    v = p.versions
    t.add_row("versions", f"mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}")
    if p.knobs:
        t.add_row("knobs", " ".join(f"{k}={v}" for k, v in p.knobs.items()))
    for note in st.reduced + r.notes:
        t.add_row("note", note)
    console.print(t)


def models_table(rows, console=None):
    console = console or Console()
    t = Table(title="mlxprof models")
    for c in ("alias", "quant", "layers", "kv-shared", "params", "weights", "streamed/token", "checkpoint"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["alias"], r["quantization"], str(r["layers"]), str(r["kv_shared"]),
                  f"{r['parameters'] / 1e9:.2f} B", _gb(r["weight_bytes"]), _gb(r["bytes_per_token"]),
                  r["repo_id"] or r["note"])
    console.print(t)


def ops_table(r, top=25, console=None):
    console = console or Console()
    m = r.model
    t = Table(title=f"mlxprof ops — {m.name} ({m.quantization}, {m.dtype}), one decode step at context {r.context}",
              title_justify="left")
    for c in ("op", "class", "count", "share"):
        t.add_column(c, justify="right" if c in ("count", "share") else "left")
    if r.diff:
        t.add_column("±", justify="right")
    items = list(r.histogram.items())
    shown = items if not top else items[:top]
    for op, n in shown:
        row = [op, r.op_class.get(op, ""), str(n), f"{n / r.nodes:.1%}"]
        if r.diff:
            d = r.diff.ops.get(op, 0)
            row.append(f"{d:+d}" if d else "")
        t.add_row(*row)
    if len(items) > len(shown):
        rest = sum(n for _, n in items[len(shown):])
        t.add_row(f"… {len(items) - len(shown)} more", "", str(rest), f"{rest / r.nodes:.1%}",
                  *([""] if r.diff else []))
    console.print(t)
    s = Table(show_header=False, box=None)
    s.add_column(style="bold")
    s.add_column()
    s.add_row("nodes", f"{r.nodes}" + (f" ({r.diff.nodes:+d} vs {r.diff.against_model})" if r.diff else ""))
    s.add_row("classes", "   ".join(
        f"{c} {r.classes[c]} ({r.classes[c] / r.nodes:.0%})"
        + (f" {r.diff.classes[c]:+d}" if r.diff and r.diff.classes.get(c) else "")
        for c in ("view", "compute", "compiled")))
    s.add_row("", "view = no kernel (shape/stride change); compiled = one fused kernel per node")
    for v in r.compiled[:8]:
        inner = ", ".join(f"{op}×{k}" if k > 1 else op for op, k in _runs_count(v.inner))
        s.add_row(f"compiled ×{v.count}", inner)
    for c in r.matvec:
        mark = "✓" if c.ok else "✗ MISMATCH"
        extra = f"; {c.nodes - c.found} more {c.op} nodes multiply two activations (attention, mixing)" \
            if c.nodes > c.found else ""
        rep = "".join(f", {k} in {n} layers" for k, n in c.repeats.items())
        s.add_row(f"{c.op} check", f"expected {c.expected} ({c.streamed_weights} streamed weights{rep}), "
                                   f"found {c.found} {mark}{extra}")
    s.add_row("KV growth", "yes: this step enlarges a KV cache buffer" if r.kv_growth else "no")
    if r.diff and r.diff.ops:
        hidden = [f"{op} {d:+d}" for op, d in r.diff.ops.items() if op not in dict(shown)]
        if hidden:
            s.add_row("± other ops", ", ".join(hidden))
    if r.dot_path:
        s.add_row("dot", r.dot_path)
    for n in r.notes:
        s.add_row("note", n)
    console.print(s)


def _runs_count(xs):
    """Fused ops with their multiplicity, first-seen order (Broadcast×2, Multiply …)."""
    out = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return list(out.items())


def floor_table(r, console=None):
    console = console or Console()
    m = r.model
    t = Table(title=f"mlxprof floor — {m.name}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    q = f"{m.quantization}" + (f", group {m.group_size}" if m.group_size else "")
    t.add_row("model", f"{m.name} ({q}, {m.dtype} activations, {m.num_layers} layers)")
    t.add_row("weight set", f"{r.matvecs} matrix-vector products: " + ", ".join(
        f"{g.kind} {g.matvecs} ({g.bytes / 1e6:.2f} MB)" for g in r.groups))
    t.add_row("bytes/token", f"{r.bytes_per_token / 1e6:.2f} MB")
    f = r.floor_ms
    t.add_row("floor", f"{f.median:.3f} ms/token median (best {f.best:.3f}, MAD {f.mad:.3f}, n={f.n}); "
                       f"graph build {r.build_ms:.3f} ms not included")
    t.add_row("achieved", f"{r.gb_s:.1f} GB/s (best {r.gb_s_best:.1f})  →  floor {r.floor_tok_s:.1f} tok/s")
    if r.probe:
        t.add_row("copy probe", f"{r.probe.gb_s:.1f} GB/s ({r.probe.bytes_moved / 2 / 2**20:.0f} MiB read + "
                                f"written, best of {r.probe.ms.n})")
    if r.decode:
        d = r.decode
        src = "measured now" if d.source == "measured" else d.source
        t.add_row("decode", f"{d.tok_s_median:.1f} tok/s median (best {d.tok_s_best:.1f}; {src}, "
                            f"{d.runs} run × {d.tokens} tokens)")
    t.add_row("verdict", r.sentence)
    for n in r.notes:
        t.add_row("note", n)
    console.print(t)


def compare_table(r, console=None):
    console = console or Console()
    t = Table(title=f"mlxprof compare — {r.family}, {r.order} ({r.settings.runs} runs × "
                    f"{r.settings.tokens} tokens after {r.settings.warmup} warm-up)", title_justify="left")
    t.add_column("")
    for v in r.variants:
        t.add_column(f"{v.bits}\n{v.alias}", justify="right")

    def row(name, f):
        t.add_row(name, *[f(v) for v in r.variants])

    row("dtype", lambda v: v.model.dtype)
    row("tok/s best", lambda v: f"{v.tok_s.best:.2f}")
    row("tok/s median", lambda v: f"{v.tok_s.median:.2f} ± {v.tok_s.mad:.2f}")
    row("tok/s samples", lambda v: " ".join(f"{x:.1f}" for x in v.tok_s.samples))
    row("token ms", lambda v: f"{v.split.token_ms:.2f}")
    row("  build / submit / wait", lambda v: f"{v.split.build_ms:.2f} / {v.split.submit_ms:.2f} / {v.split.wait_ms:.2f}")
    row("verdict", lambda v: v.verdict.label)
    row("bytes/token", lambda v: f"{v.bytes_per_token / 1e6:.1f} MB")
    row("floor ms", lambda v: f"{v.floor_ms.median:.3f}" if v.floor_ms else "–")
    row("GEMV GB/s", lambda v: f"{v.floor_gb_s:.1f}" if v.floor_gb_s else "–")
    row("floor / token", lambda v: f"{v.floor_ms.median / v.split.token_ms:.0%}" if v.floor_ms else "–")
    row("graph nodes", lambda v: f"{v.nodes}" if v.nodes else "–")
    row("peak memory", lambda v: _gb(v.peak_memory_bytes))
    console.print(t)
    s = Table(show_header=False, box=None)
    s.add_column(style="bold")
    s.add_column()
    for c in r.comparisons:
        s.add_row("vs " + c.baseline, c.sentence())
    if r.probe_gb_s:
        s.add_row("copy probe", f"{r.probe_gb_s:.1f} GB/s")
    s.add_row("why", r.sentence)
    for n in r.notes:
        s.add_row("note", n)
    console.print(s)
