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


def parity_table(r, console=None):
    console = console or Console()
    m, st, c = r.model, r.settings, r.comparison
    t = Table(title=f"mlxprof parity — {m.name}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("model", f"{m.name} ({m.quantization}, {m.weights} weights, {m.dtype})")
    t.add_row("backend / chip", f"{r.provenance.backend} / {r.provenance.chip}")
    t.add_row("runs", f"{st.rounds} rounds × ({' '.join(r.order[:2])}), interleaved; each "
                      f"{st.prompt_tokens} prompt, {st.warmup} warm-up, {st.tokens} measured tokens")
    for loop, s in r.tok_s.items():
        t.add_row(f"{loop} tok/s", f"median {s.median:.2f} ± {s.mad:.2f} MAD (best {s.best:.2f}, n={s.n}): "
                                   + ", ".join(f"{x:.2f}" for x in s.samples))
    t.add_row("ratio", c.sentence())
    t.add_row("token ids", r.tokens.sentence)
    for note in st.reduced + r.notes:
        t.add_row("note", note)
    console.print(t)
