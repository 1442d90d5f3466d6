"""Kernel names as CUPTI reports them for MLX's CUDA kernels, shared by the gpu tests.

Names g++ mangles for the same declarations as MLX's CUDA kernels (nvcc uses the
same Itanium ABI); the declarations are in mlx/backend/cuda/ (quantized/qmv.cu,
rms_norm.cu, binary.cu, copy/, reduce/, scaled_dot_product_attention.cu, rope.cu).
"""

from types import SimpleNamespace

QMV = ("_ZN3mlx4core2cu10qmv_kernelILi8ELi16ELi64ELb1ELb0EN7cutlass10bfloat16_tENS3_8uint4b_tES4_EEvPKT4_"
       "PKT5_PKT6_S8_PKfPS6_iib")
GATHER_QMV = ("_ZN3mlx4core2cu17gather_qmv_kernelILi8ELi16ELi64ELb1ELb0EN7cutlass10bfloat16_tENS3_8uint4b_tES4_"
              "EEvPKT4_PKT5_PKT6_S8_PKfPS6_PKjSJ_ii")
RMS = "_ZN3mlx4core2cu8rms_normI13__nv_bfloat16Li256ELi4EEEvPKT_S6_PS4_fjl"
ADD = "_ZN3mlx4core2cu9binary_vvINS1_3AddE13__nv_bfloat16S4_jLi8EEEvPKT0_S7_PT1_T2_"
COPY = "_ZN3mlx4core2cu6copy_vI13__nv_bfloat16fjEEvPKT_PT0_T1_"
COMPILED = "_ZN3mlx4core2cu33Cf4MultiplyAB_VV_12345_contiguousIjLi8EEEvPKfS4_PfT_"
ROW_REDUCE = "_ZN3mlx4core2cu17row_reduce_simpleI13__nv_bfloat16fNS1_3SumELi4ELi8EEEvPKT_PT0_mi"
ARGMAX = "_ZN3mlx4core2cu18arg_reduce_generalI13__nv_bfloat16NS1_6ArgMaxIS3_EELi4ELi4EEEvPKT_Pjmll"
SDPA = "_ZN3mlx4core2cu18kernel_sdpav_1passI13__nv_bfloat16Lb0ELi256EEEvPKT_S6_S6_PS4_S6_NS1_10AttnParamsE"
ROPE = "_ZN3mlx4core2cu11rope_singleI13__nv_bfloat16Lb0ELb1EEEvPKT_PS4_PKiffPKfi"


def run_like(t0, deliveries):
    """A RunRecord-like object (t0, deliveries_s) from absolute delivery times."""
    return SimpleNamespace(t0=t0, deliveries_s=[d - t0 for d in deliveries])
