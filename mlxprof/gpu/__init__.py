"""The GPU's own kernel timeline on CUDA.

  cupti.py     the recorder: the only module that imports cupti-python
  clock.py     CUPTI clock → perf_counter fit
  kernels.py   kernel names: demangling, readable names, MLX primitives
  timeline.py  the saved schema and `analyze` (pure; no CUPTI, no ctypes)

Import the submodule you need; nothing is re-exported here so that importing
the schema stays cheap.
"""
