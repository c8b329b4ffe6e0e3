"""Rewrite a Hugging Face safetensors checkpoint in another dtype, holding one output shard at a time.

Loading a float32 checkpoint into a bfloat16 model maps the whole float32 file and keeps its pages
resident beside the bfloat16 copy: three times the exported size at peak (measured on a Qwen2.5-0.5B
shape, benchmarks/export_memory.py). Converting shard by shard, reading each tensor in row blocks through
`safe_open` handles that are closed (unmapped) right after, bounds the peak by one output shard plus one
block, so a full fine-tuning export of a 7B model fits a worker with room to spare.

The dtype a model's weights are meant to be in: what `export.dtype: auto` exports.

A Hugging Face config names it (`dtype` in transformers 5, `torch_dtype` before); a local directory
without one says it through its safetensors headers. Training on CPU upcasts to float32, so the weights a
stage saved are no guide: the base model's own dtype is. Only config.json is read (never the weights of
a base in object storage: a 7B base is 15 GB).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from taiyi_ray.config.base import is_uri
from taiyi_ray.storage import Storage, join

INDEX_FILE = "model.safetensors.index.json"
BLOCK_BYTES = 64 * 1024**2


def convert_checkpoint(source: str | Path, destination: str | Path, dtype: torch.dtype) -> int:
    """Write every `*.safetensors` shard of `source` to `destination` (same names, same index) with
    floating-point tensors in `dtype`, and its config.json naming that dtype; returns bytes written."""
    source, destination = Path(source), Path(destination)
    shards = sorted(source.glob("*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"{source}: no *.safetensors files to convert")
    destination.mkdir(parents=True, exist_ok=True)
    written = 0
    for shard in shards:
        tensors = dict(_converted_tensors(shard, dtype))
        save_file(tensors, str(destination / shard.name), metadata={"format": "pt"})
        written += sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
        del tensors
    _write_config(source, destination, dtype)
    if (source / INDEX_FILE).exists():
        index = json.loads((source / INDEX_FILE).read_text())
        index.setdefault("metadata", {})["total_size"] = written
        (destination / INDEX_FILE).write_text(json.dumps(index, indent=2))
    return written


def _converted_tensors(shard: Path, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    with safe_open(str(shard), framework="pt") as handle:
        names = list(handle.keys())
    for name in names:
        with safe_open(str(shard), framework="pt") as handle:
            view = handle.get_slice(name)
            shape, stored = view.get_shape(), view.get_dtype()
        if stored not in ("F32", "F16", "BF16", "F64"):
            with safe_open(str(shard), framework="pt") as handle:
                yield name, handle.get_tensor(name).clone()
            continue
        converted = torch.empty(shape, dtype=dtype)
        rows = shape[0] if shape else 1
        row_bytes = max(1, converted.numel() // max(rows, 1)) * 4
        step = max(1, BLOCK_BYTES // row_bytes)
        for start in range(0, rows, step):
            with safe_open(str(shard), framework="pt") as handle:  # closing it unmaps the block read
                block = handle.get_slice(name)[start : start + step] if shape else handle.get_tensor(name)
                if shape:
                    converted[start : start + step] = block.to(dtype)
                else:
                    converted.copy_(block.to(dtype))
        yield name, converted


def _write_config(source: Path, destination: Path, dtype: torch.dtype) -> None:
    config_file = source / "config.json"
    if not config_file.exists():
        return
    config = json.loads(config_file.read_text())
    config.pop("torch_dtype", None)
    config["dtype"] = next(name for name, value in DTYPES.items() if value == dtype)
    (destination / "config.json").write_text(json.dumps(config, indent=2) + "\n")


log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def declared_dtype(storage: Storage, location: str) -> torch.dtype:
    """The dtype of the model at `location`: its config.json's, else (a local directory) its first
    safetensors tensor's, else float32."""
    config_file = join(location, "config.json")
    if storage.exists(config_file):
        config = storage.read_json(config_file)
        named = config.get("dtype") or config.get("torch_dtype")
        if named in DTYPES:
            return DTYPES[named]
    if not is_uri(location):
        for weights in sorted(Path(location).glob("*.safetensors")):
            with safe_open(str(weights), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is no dict)
                    return SAFETENSORS_DTYPES.get(handle.get_slice(name).get_dtype(), torch.float32)
    log.warning("%s: no dtype in config.json; exporting float32 (set export.dtype to choose)", location)
    return torch.float32


def export_dtype(configured: str, storage: Storage, base_location: str) -> torch.dtype:
    """`export.dtype` as a torch dtype (`auto`: the base model's)."""
    return declared_dtype(storage, base_location) if configured == "auto" else DTYPES[configured]
