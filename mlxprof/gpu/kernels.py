"""CUDA kernel names as CUPTI reports them → a readable name and the MLX primitive.

MLX's CUDA kernels live in `mlx/backend/cuda/` (e.g. `quantized/qmv.cu`,
`rms_norm.cu`, `binary.cu`); CUPTI gives their Itanium-mangled names. The
libstdc++ demangler (`__cxa_demangle`) is loaded through ctypes on first use
only, so importing this module costs nothing; without it a small parser of
nested names is the fallback.
"""

import re
from typing import Callable, List, Optional, Tuple

_UNLOADED = object()
_DEMANGLER = _UNLOADED  # the libstdc++ demangler once looked for; None when it is not there


def _libstdcxx_demangler():
    import ctypes  # lazy: only runs when a mangled name first needs demangling
    import ctypes.util

    try:
        lib = ctypes.CDLL(ctypes.util.find_library("stdc++") or "libstdc++.so.6")
        f = lib.__cxa_demangle
        f.restype = ctypes.c_void_p
        f.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        free = ctypes.CDLL(None).free
        free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None

    def demangle(name: str) -> Optional[str]:
        status = ctypes.c_int(0)
        p = f(name.encode(), None, None, ctypes.byref(status))
        if not p:
            return None
        try:
            return ctypes.string_at(p).decode("utf-8", "replace") if status.value == 0 else None
        finally:
            free(p)

    return demangle


def demangler() -> Optional[Callable[[str], Optional[str]]]:
    """The libstdc++ demangler, loaded on the first call; None where it cannot be loaded."""
    global _DEMANGLER
    if _DEMANGLER is _UNLOADED:
        _DEMANGLER = _libstdcxx_demangler()
    return _DEMANGLER


def _nested_name(mangled: str) -> Optional[str]:
    """Fallback for `_ZN3mlx4core2cu10qmv_kernelI...`: the length-prefixed
    identifiers of an Itanium nested name, joined with '::'."""
    m = re.match(r"_Z(N?)(.*)", mangled)
    if not m:
        return None
    rest, parts = m.group(2), []
    rest = re.sub(r"^[rVK]+", "", rest)  # cv-qualifiers of member functions
    while True:
        n = re.match(r"(\d+)", rest)
        if not n:
            break
        k = int(n.group(1))
        ident = rest[len(n.group(1)):len(n.group(1)) + k]
        if len(ident) < k:
            break
        parts.append(ident)
        rest = rest[len(n.group(1)) + k:]
        if not m.group(1):  # not nested: a single name
            break
    return "::".join(parts) if parts else None


def demangle(name: str) -> str:
    if not name.startswith("_Z"):
        return name
    d = demangler()
    if d is not None:
        full = d(name)
        if full:
            return full
    return _nested_name(name) or name


def _strip_balanced(s: str, open_: str, close: str) -> Tuple[str, List[str]]:
    """Remove every top-level open_…close_ group; also return those groups' contents."""
    out, groups, depth, cur = [], [], 0, []
    for ch in s:
        if ch == open_:
            if depth == 0:
                cur = []
            else:
                cur.append(ch)
            depth += 1
        elif ch == close and depth > 0:
            depth -= 1
            if depth == 0:
                groups.append("".join(cur))
            else:
                cur.append(ch)
        elif depth == 0:
            out.append(ch)
        else:
            cur.append(ch)
    return "".join(out), groups


def _split_top(s: str, sep: str = ",") -> List[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return parts


ELEMENTWISE_FAMILIES = ("binary", "unary", "ternary")


def readable(raw: str) -> Tuple[str, str]:
    """(short name, qualified base) of a kernel name: demangled, return type,
    template arguments and parameters dropped. Elementwise kernels keep their
    op (`binary_vv<Add>`), since the op is what tells them apart."""
    full = demangle(raw)
    # drop parameter lists and "(anonymous namespace)" groups, then template arguments
    stripped, _ = _strip_balanced(full, "(", ")")
    base, targs = _strip_balanced(stripped, "<", ">")
    base = base.strip()
    if " " in base:  # "void mlx::core::cu::rms_norm" -> qualified name
        base = base.split(" ")[-1]
    short = base.split("::")[-1] or base
    if short.startswith(ELEMENTWISE_FAMILIES) and targs:
        op = _split_top(targs[0])[0].split("::")[-1]
        if re.fullmatch(r"[A-Za-z_]\w*", op):
            short = f"{short}<{op}>"
    if len(short) > 80:
        short = short[:77] + "..."
    return short, base


# (primitive, test on the lower-cased short name) in priority order
_RULES: List[Tuple[str, Callable[[str], bool]]] = [
    # mx.distributed's collectives on CUDA: NCCL's own kernels (ncclDevKernel_AllReduce_Sum_bf16_RING_LL, …)
    ("NCCL", lambda n: n.startswith("nccl")),
    ("Compiled", lambda n: n.endswith(("_contiguous", "_strided")) or "compiled" in n),
    ("elementwise", lambda n: n.startswith(ELEMENTWISE_FAMILIES)),
    ("GatherQMM", lambda n: n.startswith("gather_q")),
    ("QuantizedMatmul", lambda n: any(k in n for k in ("qmv", "qmm", "qvm", "quantized_matmul"))),
    ("RMSNorm", lambda n: "rms_norm" in n or "rmsnorm" in n),
    ("LayerNorm", lambda n: "layer_norm" in n or "layernorm" in n),
    ("RoPE", lambda n: "rope" in n),
    ("ScaledDotProductAttention", lambda n: "sdpa" in n or "attention" in n or "flash" in n),
    ("Matmul", lambda n: any(k in n for k in ("gemv", "gemm", "nvjet", "xmma", "cublas", "cutlass",
                                               "matmul", "splitkreduce", "wgmma"))),
    ("LogSumExp", lambda n: "logsumexp" in n),
    ("Softmax", lambda n: "softmax" in n),
    ("ArgReduce", lambda n: "arg_reduce" in n or "argreduce" in n),
    ("Reduce", lambda n: "reduce" in n),
    ("Gather", lambda n: "gather" in n),
    ("Scatter", lambda n: "scatter" in n),
    ("SliceUpdate", lambda n: "slice_update" in n),
    ("Copy", lambda n: "copy" in n),
    ("Arange", lambda n: "arange" in n),
    ("Sort", lambda n: "sort" in n or "radix" in n or "partition" in n),
    ("Random", lambda n: "rbits" in n or "random" in n),
    ("memcpy", lambda n: n == "[memcpy]"),
    ("memset", lambda n: n == "[memset]" or "memset" in n),
]


def primitive_of(short: str, qualified: str = "") -> str:
    """The MLX primitive a kernel most likely implements, or "other"."""
    n = short.lower()
    q = qualified.lower()
    for prim, test in _RULES:
        if test(n):
            return prim
    if "cutlass" in q or "cublas" in q:
        return "Matmul"
    return "other"


def kernel_family(raw: str) -> Tuple[str, str]:
    """(readable name, MLX primitive) of a raw CUPTI kernel name."""
    short, qual = readable(raw)
    return short, primitive_of(short, qual)
