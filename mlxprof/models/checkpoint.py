"""Reading a checkpoint on disk without building anything: its config.json
(or a bare config file) and the headers of its .safetensors files.

A safetensors file is an 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets}} and the tensor bytes
(https://github.com/huggingface/safetensors#format); checking the header and
that every tensor's bytes are present catches garbage and truncated files in
microseconds, before a loader fails on them halfway.
"""

import json
import struct
from pathlib import Path

from ..errors import InputError

_MAX_HEADER = 100 << 20  # the format caps the header at 100 MB


def read_config_file(cfg: Path) -> dict:
    """A config.json as a dict with a model_type; InputError otherwise."""
    try:
        config = json.loads(Path(cfg).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{cfg}: unreadable config ({e})")
    if not isinstance(config, dict):
        raise InputError(f"{cfg}: a config.json holds a JSON object, not a {type(config).__name__}")
    if not isinstance(config.get("model_type"), str):
        raise InputError(f"{cfg}: no model_type (not a model config.json)")
    return config


def read_config(path: Path) -> dict:
    cfg = path / "config.json"
    if not cfg.exists():
        what = "has weights but no config.json" if weight_files(path) else "has no config.json"
        raise InputError(f"{path} {what}: not a model checkpoint directory")
    return read_config_file(cfg)


def weight_files(path: Path):
    return sorted(Path(path).glob("*.safetensors"))


def safetensors_header(f: Path) -> dict:
    """{tensor name: {dtype, shape, data_offsets}} of one file, checked for truncation."""
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError("shorter than a header")
            (n,) = struct.unpack("<Q", head)
            if n > min(_MAX_HEADER, size - 8):
                raise ValueError("header length past the end of the file")
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        header.pop("__metadata__", None)
        data = size - 8 - n
        for name, t in header.items():
            end = t["data_offsets"][1]
            if end > data:
                raise ValueError(f"tensor {name} ends at byte {end} of {data}: truncated")
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise InputError(f"{f}: not a readable .safetensors file ({e})")
    return header


def check_weights(path: Path):
    """Every .safetensors file in `path` has a valid header and all its bytes."""
    for f in weight_files(path):
        safetensors_header(f)
