"""The MFU is trustworthy: the FLOP count equals a hand computation and ../shared/gpu/sft_anchor.py's own
count for the same shapes (full and LoRA), the row-length convention is the anchor's, and the peak
FLOP/s follows the device name (H100 SXM and PCIe differ) unless configured."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from taiyi_ray.data.stream import attention_length
from taiyi_ray.model.factory import matmul_parameters
from taiyi_ray.train.metrics import flops_per_token, peak_flops

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
SHAPES = {  # Qwen2.5-0.5B and Qwen2.5-7B (their config.json values)
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False),
}  # fmt: skip
# N by hand: L x (q and o: 2h^2; k and v: 2 x h x kv_heads x head_dim; gate, up, down: 3 x h x i) + the
# LM head V x h (tied to the embedding in 0.5B, so counted once).
HAND_N = {
    "0.5b": 24 * (2 * 896**2 + 2 * 896 * 2 * 64 + 3 * 896 * 4864) + 151936 * 896,  # 493,961,216
    "7b": 28 * (2 * 3584**2 + 2 * 3584 * 4 * 128 + 3 * 3584 * 18944) + 152064 * 3584,  # 7,070,285,824
}


def meta_model(shape: str) -> torch.nn.Module:
    config = Qwen2Config(**SHAPES[shape])
    with torch.device("meta"):  # the real module tree, no memory
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("shape", ["0.5b", "7b"])
def test_matmul_parameters_are_the_hand_count(shape: str) -> None:
    assert HAND_N["0.5b"] == 493_961_216 and HAND_N["7b"] == 7_070_285_824
    assert matmul_parameters(meta_model(shape)) == HAND_N[shape]


@pytest.mark.parametrize(("shape", "lora", "expected"), [
    ("0.5b", False, 6 * 493_961_216 + 12 * 24 * 896 * 2048),  # 3,492,249,600 FLOPs per token
    ("0.5b", True, 4 * 493_961_216 + 12 * 24 * 896 * 2048),
    ("7b", False, 6 * 7_070_285_824 + 12 * 28 * 3584 * 2048),
    ("7b", True, 4 * 7_070_285_824 + 12 * 28 * 3584 * 2048),
])  # fmt: skip
def test_flops_per_token_by_hand_and_by_the_anchor(shape: str, lora: bool, expected: int) -> None:
    layers, hidden = SHAPES[shape]["num_hidden_layers"], SHAPES[shape]["hidden_size"]
    ours = flops_per_token(HAND_N[shape], layers, hidden, 2048, frozen_base=lora)
    assert ours == expected
    anchor_file = SHARED / "gpu" / "sft_anchor.py"
    if not anchor_file.is_file():
        pytest.skip(f"{anchor_file} is absent: the anchor's own count cannot be compared")
    spec = importlib.util.spec_from_file_location("sft_anchor", anchor_file)
    assert spec is not None and spec.loader is not None
    anchor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor)
    assert anchor.flops_per_token(shape, 2048, lora) == ours


def test_the_attention_length_is_the_row_length_token_weighted() -> None:
    assert attention_length(np.array([2048] * 8)) == 2048  # the anchor's rows: T itself
    assert attention_length(np.array([1000, 3000])) == pytest.approx((1000**2 + 3000**2) / 4000)  # 2500
    assert attention_length(np.array([], dtype=np.int64)) == 0.0


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA L40S", 362e12),
    ("NVIDIA A40", 149.7e12),
    ("NVIDIA A10", 125e12),
    ("NVIDIA L4", 121e12),
])  # fmt: skip
def test_peak_flops_follow_the_device_name(name: str, peak: float) -> None:
    assert peak_flops(None, name) == peak
    assert peak_flops(5e14, name) == 5e14  # configured wins


def test_an_unknown_device_gives_no_mfu_rather_than_a_wrong_one() -> None:
    assert peak_flops(None, "Some Future GPU") is None
