"""Kernel names: demangled, made readable, mapped to MLX primitives."""

import pytest
from cuda_kernel_names import (ADD, ARGMAX, COMPILED, COPY, GATHER_QMV, QMV, RMS, ROPE, ROW_REDUCE,
                               SDPA)

from mlxprof.gpu import kernels

EXPECTED = {
    QMV: ("qmv_kernel", "QuantizedMatmul"),
    GATHER_QMV: ("gather_qmv_kernel", "GatherQMM"),
    RMS: ("rms_norm", "RMSNorm"),
    ADD: ("binary_vv<Add>", "elementwise"),
    COPY: ("copy_v", "Copy"),
    COMPILED: ("Cf4MultiplyAB_VV_12345_contiguous", "Compiled"),
    ROW_REDUCE: ("row_reduce_simple", "Reduce"),
    ARGMAX: ("arg_reduce_general", "ArgReduce"),
    SDPA: ("kernel_sdpav_1pass", "ScaledDotProductAttention"),
    ROPE: ("rope_single", "RoPE"),
    "nvjet_hsh_64x8_64x16_2x1_v_bz_coopA_TNT": ("nvjet_hsh_64x8_64x16_2x1_v_bz_coopA_TNT", "Matmul"),
    "void gemv_single<float, 4>(float const*, float*)": ("gemv_single", "Matmul"),
    "[memset]": ("[memset]", "memset"),
    "some_unknown_kernel": ("some_unknown_kernel", "other"),
}


@pytest.mark.parametrize("raw", sorted(EXPECTED))
def test_kernel_names_are_readable_and_mapped_to_primitives(raw):
    assert kernels.kernel_family(raw) == EXPECTED[raw]


def test_names_without_the_libstdcxx_demangler(monkeypatch):
    monkeypatch.setattr(kernels, "_DEMANGLER", None)
    assert kernels.kernel_family(QMV) == ("qmv_kernel", "QuantizedMatmul")
    assert kernels.kernel_family(RMS) == ("rms_norm", "RMSNorm")
    assert kernels.demangle("not_mangled") == "not_mangled"


def test_the_demangler_is_loaded_on_first_use_only(monkeypatch):
    monkeypatch.setattr(kernels, "_DEMANGLER", kernels._UNLOADED)
    assert kernels.demangle("plain_name") == "plain_name"  # not mangled: nothing to load
    assert kernels._DEMANGLER is kernels._UNLOADED
    assert kernels.kernel_family(RMS) == ("rms_norm", "RMSNorm")
    assert kernels._DEMANGLER is not kernels._UNLOADED  # looked for once (None where libstdc++ is absent)
    assert kernels.demangler() is kernels._DEMANGLER
