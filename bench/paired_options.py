"""The options bench/parity.py and bench/step_variants.py share: how long and how
finely their paired blocks run (mlxprof/paired.py)."""


def add_paired_options(ap):
    ap.add_argument("--model", default="gemma3n-tiny")
    ap.add_argument("--weights", default="auto", choices=["auto", "real", "synthetic"])
    ap.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--budget", type=float, default=None, help="seconds of measuring at most [120]")
    ap.add_argument("--block", type=int, default=None, help="measured tokens per block [8]")
    ap.add_argument("--rounds", type=int, default=None, help="at most this many rounds [no limit]")
    ap.add_argument("--tokens", type=int, default=None, help="tokens per loop between prefills [100]")
    ap.add_argument("--warmup", type=int, default=None, help="untimed tokens after each prefill [20]")
    ap.add_argument("--prompt-tokens", type=int, default=None)
    return ap
