"""A diff (diff.py) as a terminal table (rich) and as markdown: warnings
first, then the provenance fields that differ, then every metric B against A,
then the --fail-if-slower gate and what each kind of sample means."""

import math

from rich.table import Table
from rich.text import Text

from .formats import markdown_table
from .render import stdout_console

DIFF_COLUMNS = ("metric", "A", "B", "B − A", "B / A", "95% CI", "p", "verdict", "samples")
_STYLES = {"significant gain": "bold green", "regression": "bold red"}


def fmt_number(x, sign: bool = False) -> str:
    """Whole numbers with thousands separators, others to 4 significant digits."""
    if x is None:
        return "–"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    if x == int(x) and abs(x) >= 1000:
        return format(int(x), "+," if sign else ",")
    return format(x, "+.4g" if sign else ".4g")


def metric_cells(r):
    """The metric table as rows of strings (DIFF_COLUMNS)."""
    out = []
    for m in r.metrics:
        ci = f"{m.ci_low:.3f}–{m.ci_high:.3f}" if m.ci_low is not None else "–"
        verdict = m.verdict or ""
        if m.metric in r.slower:
            verdict += f" (slower than --fail-if-slower {r.fail_if_slower:.1%} allows)"
        out.append([m.metric, fmt_number(m.a), fmt_number(m.b), fmt_number(m.delta, sign=True),
                    "–" if m.ratio is None else f"×{m.ratio:.3f}", ci,
                    "–" if m.p_value is None else f"{m.p_value:.2g}", verdict, m.samples])
    return out


def gate_line(r):
    """The --fail-if-slower outcome in words, or None when no gate was asked."""
    from .diff import slower_sentence

    if r.fail_if_slower is None:
        return None
    if r.slower:
        return "--fail-if-slower: failed: " + slower_sentence(r)
    return (f"--fail-if-slower {r.fail_if_slower:.1%}: passed (no tok/s metric's 95% CI lies below "
            f"×{1 - r.fail_if_slower:.3f})")


def _title(r):
    return f"mlxprof diff — {r.of}: A {r.a_path}  vs  B {r.b_path}"


def diff_table(r, console=None):
    console = console or stdout_console()
    console.print(Text(_title(r), style="bold"))
    for w in r.warnings:
        console.print(Text(f"warning: {w}", style="bold yellow"))
    if r.differences:
        t = Table(title=f"provenance: {len(r.differences)} fields differ, {r.same} equal", title_justify="left")
        t.add_column("field", no_wrap=True)
        for c in ("A", "B"):  # settings.reduced, commands: long sentences fold
            t.add_column(c, overflow="fold", max_width=70)
        for d in r.differences:
            t.add_row(*(Text("–" if x is None else x) for x in (d.field, d.a, d.b)))
        console.print(t)
    else:
        console.print(f"provenance: all {r.same} fields equal")
    t = Table(title="B against A", title_justify="left")
    for c in DIFF_COLUMNS:
        t.add_column(c, justify="right" if c in ("A", "B", "B − A", "B / A", "p") else "left",
                     no_wrap=c == "metric")
    for m, cells in zip(r.metrics, metric_cells(r)):
        # Text, not markup: "tok/s [4bit]" and "[x86_64]" are not rich tags
        t.add_row(*map(Text, cells[:-2]), Text(cells[-2], style=_STYLES.get(m.verdict, "")), Text(cells[-1]))
    console.print(t)
    line = gate_line(r)
    if line:
        console.print(Text(line, style="bold red" if r.slower else "bold"))
    for n in r.notes:
        console.print(Text(f"note: {n}", style="dim"))


def diff_markdown(r) -> str:
    parts = [f"**{_title(r)}**\n"]
    parts += [f"> **warning:** {w}\n" for w in r.warnings]
    if r.differences:
        parts.append(f"Provenance: {len(r.differences)} fields differ, {r.same} equal.\n")
        parts.append(markdown_table(("field", "A", "B"), [(d.field, d.a or "–", d.b or "–")
                                                          for d in r.differences]))
    else:
        parts.append(f"Provenance: all {r.same} fields equal.\n")
    parts.append(markdown_table(DIFF_COLUMNS, metric_cells(r)))
    line = gate_line(r)
    if line:
        parts.append(f"**{line}**\n")
    parts += [f"_note: {n}_\n" for n in r.notes]
    return "\n".join(parts)
