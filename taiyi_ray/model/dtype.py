"""The dtype a model's weights are meant to be in: what `export.dtype: auto` exports.

A Hugging Face config names it (`dtype` in transformers 5, `torch_dtype` before); a local directory
without one says it through its safetensors headers. Training on CPU upcasts to float32, so the weights a
stage saved are no guide: the base model's own dtype is. Only config.json is read (never the weights of
a base in object storage: a 7B base is 15 GB).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import safe_open

from taiyi_ray.config.base import is_uri
from taiyi_ray.storage import Storage, join

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
