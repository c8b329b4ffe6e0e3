"""convert_checkpoint (used by full fine-tuning exports): every shard of a sharded float32 checkpoint
rewritten in bf16 under the same names, an index whose total_size is what was written, integer tensors
untouched, and the model reloads equal to a plain cast."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.model import convert_weights
from taiyi_ray.model.convert_weights import INDEX_FILE, convert_checkpoint
from taiyi_ray.model.factory import build_tiny_qwen2


def test_a_sharded_float32_checkpoint_becomes_bf16_shard_by_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_tiny_qwen2(TinyQwen2Shape(), 256, 0, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(tmp_path / "fp32", max_shard_size="200KB")
    shards = sorted(path.name for path in (tmp_path / "fp32").glob("*.safetensors"))
    assert len(shards) >= 2
    monkeypatch.setattr(convert_weights, "BLOCK_BYTES", 4096)  # many row blocks per tensor
    written = convert_checkpoint(tmp_path / "fp32", tmp_path / "bf16", torch.bfloat16)

    assert sorted(path.name for path in (tmp_path / "bf16").glob("*.safetensors")) == shards
    tensors = [tensor for shard in shards for tensor in load_file(str(tmp_path / "bf16" / shard)).values()]
    assert {tensor.dtype for tensor in tensors} == {torch.bfloat16}
    index = json.loads((tmp_path / "bf16" / INDEX_FILE).read_text())
    assert index["metadata"]["total_size"] == written == sum(tensor.numel() * 2 for tensor in tensors)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    for (name, ours), theirs in zip(reloaded.state_dict().items(), model.state_dict().values(), strict=True):
        assert ours.dtype == torch.bfloat16 and torch.equal(ours, theirs.to(torch.bfloat16)), name


def test_integer_tensors_keep_their_dtype(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    save_file({"steps": torch.arange(5), "w": torch.ones(3, 2)}, str(tmp_path / "in" / "model.safetensors"))
    convert_checkpoint(tmp_path / "in", tmp_path / "out", torch.float16)
    tensors = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert tensors["steps"].dtype == torch.int64 and torch.equal(tensors["steps"], torch.arange(5))
    assert tensors["w"].dtype == torch.float16


def test_no_weights_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no \\*.safetensors"):
        convert_checkpoint(tmp_path, tmp_path / "out", torch.bfloat16)
