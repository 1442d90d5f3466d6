"""Terminal tables (rich) for results."""

import sys

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 1000  # piped or redirected: one row per line, nothing folded


def stdout_console() -> Console:
    """The terminal's width on a terminal; in a pipe or file, wide enough that
    no row wraps or truncates, so `mlxprof models | grep e4b` finds it."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPE_WIDTH)


def fmt_bytes(x):
    """GB for model-sized numbers, MB/kB for the tiny test architectures."""
    if x >= 1e8:
        return f"{x / 1e9:.2f} GB"
    return f"{x / 1e6:.2f} MB" if x >= 1e5 else f"{x / 1e3:.1f} kB"



def fmt_params(n):
    """Parameter counts at a scale that shows them: 1.91 B, 0.60 B, 1.23 M."""
    if n >= 1e8:
        return f"{n / 1e9:.2f} B"
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def id_column(table, name, values, **kw):
    """A column of identifiers (aliases, repo ids, knob values): never
    truncated or folded, also at 80 columns and in a pipe, so `| grep` finds
    them; the other columns wrap instead."""
    width = max([len(name)] + [len(str(v)) for v in values])
    table.add_column(name, no_wrap=True, min_width=width, overflow="ignore", **kw)


def _kv_table(title):
    """A two-column name/value table, the shape of every result summary."""
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    return t


def decode_table(r, console=None):
    console = console or stdout_console()
    p, m, s = r.provenance, r.model, r.split
    t = _kv_table(f"mlxprof decode — {m.name}")
    t.add_row("model", f"{m.name} ({m.quantization}, {m.num_layers} layers, {fmt_params(m.parameters)} params)")
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
    kv = (f" + KV cache {fmt_bytes(r.kv_bytes_per_token)} read at context {r.kv_context}"
          if r.kv_bytes_per_token is not None else "")
    t.add_row("bytes/token", f"{fmt_bytes(m.bytes_per_token)} weights streamed{kv} → "
                             f"{m.bytes_per_token / (s.token_ms / 1e3) / 1e9:.1f} GB/s effective (weights)")
    t.add_row("peak memory", fmt_bytes(r.peak_memory_bytes))
    v = p.versions
    t.add_row("versions", f"mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}")
    if p.knobs:
        t.add_row("knobs", " ".join(f"{k}={v}" for k, v in p.knobs.items()))
    if getattr(r, "cold_start", None) is not None:
        from .coldstart import describe

        t.add_row("cold start", describe(r.cold_start))
    if getattr(r, "gpu", None) is not None:
        _gpu_rows(t, r.gpu, s)
    for note in st.reduced + r.notes:
        t.add_row("note", note)
    console.print(t)


def _gpu_rows(t, g, split):
    """Rows for a CUPTI timeline (decode --gpu-timeline): each figure says which
    runs it came from, and each kind of traced run what it cost."""
    per_run = ", ".join(f"{x:.0%}" for x in g.busy_fraction_runs)
    graph = g.busy_level == "graph"
    what = ("graph-level records, one per CUDA graph launch" if graph else "kernel-level records")
    cupti_busy = (f"{g.busy_fraction:.0%} of wall over {g.runs} {'graph' if graph else 'kernel'}-traced "
                  f"runs ({per_run}): {what}, from {g.source}")
    nv = g.nvml if g.nvml is not None and g.nvml.busy_fraction is not None else None
    if nv is not None:
        t.add_row("GPU busy", f"{nv.busy_fraction:.0%} of wall over {nv.runs} untraced runs "
                              f"({', '.join('–' if x is None else f'{x:.0%}' for x in nv.busy_fraction_runs)}): "
                              f"NVML utilization samples, {nv.samples} whole periods of ~{nv.period_ms:.0f} ms "
                              f"covering {nv.coverage:.0%} of the measured tokens; read between runs, so it "
                              "costs them nothing")
        if split.token_ms:
            t.add_row("GPU per token", f"≈ {nv.busy_fraction * split.token_ms:.2f} ms busy (NVML busy × the "
                                       f"untraced median token of {split.token_ms:.2f} ms)")
        same = (f"; NVML on the same runs {g.nvml_traced.busy_fraction:.0%}"
                if g.nvml_traced is not None and g.nvml_traced.busy_fraction is not None else "")
        t.add_row("CUPTI busy", cupti_busy + same)
    else:
        t.add_row("GPU busy", cupti_busy)
        gm = g.gpu_ms_per_token
        share = f" = {gm.median / split.token_ms:.0%} of an untraced token" if split.token_ms else ""
        launches = f"; {g.graphs_per_token:.1f} CUDA graph launches" if g.graphs_per_token is not None else ""
        t.add_row("GPU per token", f"{gm.median:.2f} ms busy median (min {gm.min:.2f}, max {gm.max:.2f}){share}"
                                   f"{launches}")
    table_runs = g.table_runs if g.table_runs is not None else g.runs
    cross = (f"; kernel-level busy {g.kernel_busy_fraction:.0%} in those runs"
             if g.kernel_busy_fraction is not None else "")
    t.add_row("GPU kernels", f"{g.kernels_per_token:.0f} per token, {g.kernel_ms_per_token:.2f} ms summed, "
                             f"{g.graph_kernel_share:.0%} from CUDA graphs: from {table_runs} "
                             f"{g.table_level}-traced run{'s' if table_runs != 1 else ''}{cross}")
    t.add_row("GPU by primitive", "   ".join(
        f"{p.primitive} {p.ms_per_token:.2f} ms ({p.share:.0%}, {p.count_per_token:.0f}×)" for p in g.by_primitive[:6]))
    for k in g.top_kernels[:8]:
        t.add_row("  kernel", f"{k.name} [{k.primitive}]: {k.ms_per_token:.3f} ms/token ({k.share:.0%}), "
                              f"{k.count_per_token:.1f}×/token, {k.mean_us:.1f} µs each")
    for name, n, o in g.costs():
        t.add_row("tracing cost", f"{name}, {n} run{'s' if n != 1 else ''}: {o.candidate_summary.median:.2f} vs "
                                  f"untraced {o.baseline_summary.median:.2f} tok/s median: ×{o.ratio:.3f} "
                                  f"(95% CI {o.ci_low:.3f}–{o.ci_high:.3f}, {o.verdict})")
    c = g.clock
    t.add_row("GPU clock", f"CUPTI→perf_counter fit on {c.pairs} pairs over {c.span_s:.1f} s: residual "
                           f"{c.residual_us:.1f} µs, drift {c.drift_ppm:.1f} ppm"
                           + (f" ({c.note})" if c.note else ""))
    for note in g.notes:
        t.add_row("note", f"GPU timeline: {note}")


def models_table(rows, console=None):
    console = console or stdout_console()
    t = Table(title="mlxprof models")
    id_column(t, "family", [r["family"] for r in rows])
    id_column(t, "alias", [r["alias"] for r in rows])
    for c in ("type", "quant", "layers", "params", "experts", "weights", "streamed/token"):
        t.add_column(c)
    t.add_column("checkpoint", overflow="fold")
    last = None
    for r in rows:
        t.add_row(r["family"] if r["family"] != last else "", r["alias"],
                  f"{r['model_type']} ({r['library']})", r["quantization"], str(r["layers"]),
                  fmt_params(r["parameters"]), r.get("experts") or "—", fmt_bytes(r["weight_bytes"]),
                  fmt_bytes(r["bytes_per_token"]), r["repo_id"] or r["note"])
        last = r["family"]
    console.print(t)


def env_table(r, console=None):
    """`mlxprof env`: chip, MLX's knob defaults and values in force, gating advice."""
    console = console or stdout_console()
    p, c = r.provenance, r.chip
    t = _kv_table("mlxprof env")
    t.add_row("backend", p.backend)
    t.add_row("chip", f"{c.name} — family {c.family}")
    t.add_row("identified by", c.detail)
    v = p.versions
    t.add_row("versions", f"mlx {v.get('mlx')}, mlx-lm {v.get('mlx-lm')}, mlx-vlm {v.get('mlx-vlm')}, "
                          f"mlxprof {v.get('mlxprof')}")
    t.add_row("MLX_* set", " ".join(f"{k}={x}" for k, x in p.knobs.items()) or "none")
    console.print(t)

    k = Table(title="MLX scheduler variables (read once, when MLX creates its device)", title_justify="left")
    k.add_column("variable", no_wrap=True)
    k.add_column("default", no_wrap=True)
    k.add_column("env", no_wrap=True)
    k.add_column("in force", no_wrap=True)
    k.add_column("why this default")
    for s in r.knobs:
        if not s.read:
            k.add_row(s.knob, "not read", s.env or "unset", "—", s.basis)
        else:
            k.add_row(s.knob, str(s.default), s.env or "unset", s.in_force + (" (env)" if s.env is not None else ""),
                      s.basis + (f" [dim]({s.source})[/dim]" if s.source else ""))
    console.print(k)

    where = r.gating_file + ("" if r.gating_file_exists else ", absent")
    g = Table(title=f"gating for {c.family} (user file {where})", title_justify="left")
    g.add_column("variable", no_wrap=True)
    g.add_column("recommended", no_wrap=True)
    g.add_column("reason and source")
    for rec in r.recommendations:
        pv = rec.provenance
        src = pv.get("source") or ""
        if rec.origin != "built-in":
            src = f"{rec.origin}" + (f": {src}" if src else "")
        date = pv.get("date") or pv.get("recorded")
        bits = [x for x in (src, pv.get("measured_on"), f"MLX {pv['mlx']}" if pv.get("mlx") else None, date) if x]
        g.add_row(rec.knob, "leave default" if rec.value is None else rec.value,
                  rec.reason + (f"\n[dim]{'; '.join(map(str, bits))}[/dim]" if bits else ""))
    console.print(g)


def parity_table(r, console=None):
    console = console or stdout_console()
    m, st = r.model, r.settings
    t = _kv_table(f"mlxprof parity — {m.name}")
    t.add_row("model", f"{m.name} ({m.quantization}, {m.weights} weights, {m.dtype})")
    t.add_row("backend / chip", f"{r.provenance.backend} / {r.provenance.chip}")
    if r.paired is None:  # a result of the interleaved whole-run method
        t.add_row("runs", f"{st.rounds} rounds × ({' '.join(r.order[:2])}), interleaved; each "
                          f"{st.prompt_tokens} prompt, {st.warmup} warm-up, {st.tokens} measured tokens")
    else:
        _parity_method_rows(t, r)
    for loop, s in r.tok_s.items():
        t.add_row(f"{loop} tok/s", f"median {s.median:.2f} ± {s.mad:.2f} MAD (best {s.best:.2f}, n={s.n})"
                  + ("" if r.paired else ": " + ", ".join(f"{x:.2f}" for x in s.samples)))
    if r.paired is None:
        t.add_row("ratio", r.comparison.sentence())
    for c in r.paired.comparisons if r.paired else []:
        t.add_row("ratio", c.sentence())
    t.add_row("token ids", r.tokens.sentence)
    shown = _parity_shown(r)
    for note in st.reduced + r.notes:
        if note not in shown and not note.startswith("method: "):  # the method and rounds rows say it
            t.add_row("note", note)
    console.print(t)


def _parity_shown(r):
    from .paired import stop_sentence

    return {stop_sentence(r.paired)} if r.paired else set()


def _parity_method_rows(t, r):
    from .paired import stop_sentence

    st, ps = r.settings, r.paired.settings
    t.add_row("method", f"paired blocks of {ps.settle} + {ps.block} tokens in palindromic rounds "
                        f"({' '.join(r.paired.rounds[0].order) if r.paired.rounds else ''} …); all loops "
                        f"restart from a fresh {st.prompt_tokens}-token prefill + {st.warmup} warm-up tokens "
                        f"every {ps.rounds_per_segment} rounds")
    t.add_row("rounds", stop_sentence(r.paired))


def _fmt(x, spec, none="–"):
    return none if x is None else format(x, spec)


def sweep_rows(r):
    """The sweep table as rows of strings: value, n, median ± MAD, speedup, CI, p, verdict."""
    out = []
    for row in r.rows:
        n = f"{row.n}" + (f" ({row.failed} failed)" if row.failed else "")
        med = f"{row.median:.2f} ± {row.mad:.2f}" if row.median is not None else "–"
        ci = f"{row.ci_low:.3f}–{row.ci_high:.3f}" if row.ci_low is not None else "–"
        out.append([row.label, n, med, _fmt(row.ratio, ".3f"), ci, _fmt(row.p_value, ".2g"), row.verdict])
    return out


SWEEP_COLUMNS = ("value", "n", "median tok/s ± MAD", "speedup ×", "95% CI", "p", "verdict")


def sweep_overhead_line(r):
    o = r.overhead()
    if o is None:
        return None
    return (f"per point (median): process start {o['start_s']:.2f} s, imports {o['import_s']:.2f} s, "
            f"model build {o['build_s']:.2f} s, measure {o['measure_s']:.2f} s, total {o['total_s']:.2f} s "
            f"(overhead {o['overhead_s']:.2f} s)")


def _sweep_title(r):
    swept = [k for k in r.knobs if k not in r.skipped] or ["variants"]
    return (f"mlxprof sweep — {r.model_name}, {' × '.join(swept)} on {r.provenance.chip} "
            f"({r.provenance.backend}), {r.settings.reps} reps" + (" [partial]" if r.partial else ""))


def sweep_renderable(r):
    from rich.console import Group
    from rich.text import Text

    styles = {"significant gain": "bold green", "regression": "bold red", "baseline": "bold"}
    t = Table(title=_sweep_title(r), title_justify="left")
    for c in SWEEP_COLUMNS:
        t.add_column(c, justify="right" if c in ("n", "speedup ×", "p") else "left",
                     overflow="fold" if c == "value" else "ellipsis")
    for row, cells in zip(r.rows, sweep_rows(r)):
        t.add_row(*cells[:-1], Text(cells[-1], style=styles.get(row.verdict, "")))
    parts = [t]
    if r.recommendation:
        parts.append(Text(r.recommendation.sentence, style="bold"))
    line = sweep_overhead_line(r)
    if line:
        parts.append(Text(line))
    for n in r.notes + list(r.skipped.values()):
        parts.append(Text(f"note: {n}", style="dim"))
    return Group(*parts)


def sweep_table(r, console=None):
    (console or stdout_console()).print(sweep_renderable(r))


def sweep_markdown(r):
    lines = [f"**{_sweep_title(r)}**", "", "| " + " | ".join(SWEEP_COLUMNS) + " |",
             "|" + "---|" * len(SWEEP_COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in sweep_rows(r)]
    lines.append("")
    if r.recommendation:
        lines.append(f"**{r.recommendation.sentence}**")
    line = sweep_overhead_line(r)
    if line:
        lines += ["", line]
    for n in r.notes + list(r.skipped.values()):
        lines += ["", f"_note: {n}_"]
    return "\n".join(lines) + "\n"


def sweep_html(r):
    from html import escape

    head = "".join(f"<th>{escape(c)}</th>" for c in SWEEP_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>" for cells in sweep_rows(r))
    parts = [f"<p><b>{escape(_sweep_title(r))}</b></p>", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"]
    if r.recommendation:
        parts.append(f"<p><b>{escape(r.recommendation.sentence)}</b></p>")
    line = sweep_overhead_line(r)
    if line:
        parts.append(f"<p>{escape(line)}</p>")
    for n in r.notes + list(r.skipped.values()):
        parts.append(f"<p><i>note: {escape(n)}</i></p>")
    return "\n".join(parts)


def vlm_table(r, console=None):
    """TTFT breakdown (median / stddev / max deviation cells) and
    the text-vs-image table."""
    console = console or stdout_console()
    m, st, v, b = r.model, r.settings, r.vision, r.breakdown
    console.print(f"[bold]mlxprof vlm — {m.name}[/bold] ({m.weights} weights, {m.dtype}, "
                  f"{r.provenance.backend} / {r.provenance.chip})")
    how = ("sequential (mx.eval between stages)" if b.stages else
           f"one fused eval each; {b.note or 'no breakdown'}")
    t = Table(title=f"TTFT breakdown — {b.runs} runs after {b.warmup} warm-ups, {how}; cells: median  stddev  "
                    "largest deviation", title_justify="left")
    for c in ("stage", "median [s]", "stddev [s]", "max dev [s]", "share"):
        t.add_column(c)
    for name, s in list(b.stages.items()) + [("ttft", b.ttft)]:
        t.add_row(name, f"{s.median_s:.4g}", f"{s.stdev_s:.3g}", f"{s.max_dev_s:.3g}", f"{s.share:.1%}")
    console.print(t)
    for name, what in b.help.items():
        console.print(f"  [bold]{name}[/bold]: {what}", highlight=False)
    c = Table(title="text vs image prompt — same text, interleaved runs, fresh cache each", title_justify="left")
    for col in ("prompt", "tokens", "prefill tok/s", "TTFT [s]", "decode tok/s (median ± MAD)", "decode best"):
        c.add_column(col)
    for row in (r.text, r.image):
        c.add_row(row.prompt, str(row.prompt_tokens), f"{row.prefill_tok_s.median:.1f}",
                  f"{row.ttft_s.median:.4g}", row.tok_s.fmt(2), f"{row.tok_s.best:.2f}")
    console.print(c)
    console.print(f"decode, image vs text: {r.decode_comparison.sentence()}")
    for note in st.reduced + r.notes:
        console.print(f"note: {note}")


def ops_table(r, top=25, console=None):
    console = console or stdout_console()
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
    console = console or stdout_console()
    m = r.model
    t = _kv_table(f"mlxprof floor — {m.name}")
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
    console = console or stdout_console()
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
    row("peak memory", lambda v: fmt_bytes(v.peak_memory_bytes))
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
