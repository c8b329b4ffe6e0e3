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


STAGE = {"data": [{"set": "stage1"}], "num_workers": 1}


@pytest.mark.parametrize(
    ("backend", "use_gpu", "message"),
    [
        ("flash_attention_2", False, "flash_attention_2 needs a GPU (use_gpu is false); use sdpa"),
        ("flex_attention", False, "flex_attention cannot train on CPU (no backward in torch); use sdpa"),
    ],
)
def test_a_backend_that_cannot_train_here_is_refused_before_ray_starts(
    backend: str, use_gpu: bool, message: str, tmp_path
) -> None:
    import ray

    from taiyi_ray.config.jobs import Stage1JobConfig
    from taiyi_ray.train.job import run_stage_job

    config = Stage1JobConfig.model_validate(
        {
            "model": {"attn_implementation": backend},
            "data": {"catalogue": "configs/catalogues/demo.yaml"},
            "stage1": {**STAGE, "use_gpu": use_gpu},
            "storage": {"root": str(tmp_path)},
        }
    )
    connected = ray.is_initialized()  # a whole-suite run may already hold the test cluster
    with pytest.raises(ValueError) as refused:
        run_stage_job(config, "stage1", str(tmp_path / "run"))
    assert str(refused.value) == f"model.attn_implementation: {message}"
    assert ray.is_initialized() == connected  # refused before init_ray


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed")
def test_flash_attention_without_the_package_is_refused_on_a_gpu_stage() -> None:
    from taiyi_ray.config.model import ModelConfig
    from taiyi_ray.config.train import StageConfig
    from taiyi_ray.train.job import refuse_unusable_attention

    stage = StageConfig.model_validate({**STAGE, "use_gpu": True})
    with pytest.raises(
        ValueError, match=r"flash_attention_2 needs the flash-attn package, which is not installed"
    ):
        refuse_unusable_attention(ModelConfig(attn_implementation="flash_attention_2"), stage)
    for usable in ("sdpa", "eager", "flex_attention"):
        refuse_unusable_attention(ModelConfig(attn_implementation=usable), stage)  # a GPU stage takes them


def test_liger_with_compile_is_a_config_error() -> None:
    from pydantic import ValidationError

    from taiyi_ray.config.train import StageConfig

    with pytest.raises(ValidationError, match=r"torch.compile breaks on liger's fused linear cross-entropy"):
        StageConfig.model_validate({**STAGE, "liger_kernel": True, "torch_compile": True})
