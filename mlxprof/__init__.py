"""mlxprof: profile LLM decode on MLX."""

__version__ = "0.1.0"
