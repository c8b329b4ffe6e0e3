"""The GPU-only kernel switch falls back cleanly where there is no GPU, and says what is missing where
there is one."""

from __future__ import annotations

import importlib.util
import logging

import pytest
import torch

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.model.factory import build_tiny_qwen2
from taiyi_ray.train.model_setup import apply_liger


def tiny_model() -> torch.nn.Module:
    shape = TinyQwen2Shape(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    return build_tiny_qwen2(shape, 128, seed=0, eos_token_id=1, pad_token_id=0).eval()


def test_liger_on_cpu_keeps_the_model_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    model = tiny_model()
    ids = torch.randint(2, 128, (2, 16))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    modules = [type(module).__name__ for module in model.modules()]
    with caplog.at_level(logging.WARNING):
        assert apply_liger(model, on_gpu=False) is False
    assert "needs a GPU" in caplog.text
    assert [type(module).__name__ for module in model.modules()] == modules
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, before)


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is not None, reason="liger-kernel is installed")
def test_liger_on_gpu_without_the_package_names_it() -> None:
    with pytest.raises(RuntimeError, match="needs the liger-kernel package"):
        apply_liger(tiny_model(), on_gpu=True)
