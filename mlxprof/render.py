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
    (console or Console()).print(sweep_renderable(r))


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
