"""The options bench/parity.py and bench/step_variants.py share: how long and how
finely their paired blocks run (mlxprof/paired.py)."""


def add_paired_options(ap, block=None, tokens=None, blocks_only=""):
    """`block` and `tokens`: this bench's own defaults (None: parity's, 8 and 100);
    `blocks_only` heads the help of the options only paired blocks use."""
    ap.add_argument("--model", default="gemma3n-tiny")
    ap.add_argument("--weights", default="auto", choices=["auto", "real", "synthetic"])
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--budget", type=float, default=None, help="seconds of measuring at most [120]")
    ap.add_argument("--block", type=int, default=block, help=f"{blocks_only}measured tokens per block [{block or 8}]")
    ap.add_argument("--rounds", type=int, default=None, help=f"{blocks_only}at most this many rounds [no limit]")
    ap.add_argument("--tokens", type=int, default=tokens,
                    help=f"tokens per loop between prefills [{tokens or 100}]")
    ap.add_argument("--warmup", type=int, default=None, help="untimed tokens after each prefill [20]")
    ap.add_argument("--prompt-tokens", type=int, default=None)
    return ap
