"""The model a stage trains: base weights (tiny random Qwen2, a model directory, or the previous stage's
result), then LoRA / QLoRA adapters via peft or full fine-tuning, gradient checkpointing, kernels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import PreTrainedModel

from taiyi_ray.config.train import StageConfig
from taiyi_ray.model.factory import load_causal_lm, unwrapped
from taiyi_ray.storage import Storage, join
from taiyi_ray.train.spec import TrainSpec

log = logging.getLogger(__name__)


@dataclass
class TrainModel:
    model: torch.nn.Module
    base_location: str  # the base model directory the result's adapter (or weights) belongs to


def base_source(spec: TrainSpec) -> tuple[str, str]:
    """(where the starting weights are, the base model the result belongs to): the previous stage's full
    weights or its base, else model.base; local paths or object-storage URIs alike."""
    previous = spec.init_from
    if previous is not None and spec.init_from_dir is not None:
        if previous.method == "full" and previous.weights:
            return join(spec.init_from_dir, previous.weights), previous.base_model
        return previous.base_model, previous.base_model
    if spec.model.base is None:
        raise ValueError("model.base is not set (the stage job saves a tiny random base and sets it)")
    return spec.model.base, spec.model.base


def _base_model(
    spec: TrainSpec, storage: Storage, scratch: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, str]:
    """The starting weights, fetched once per node (storage.cache_dir) and loaded once: in 4-bit NF4
    straight from the files for QLoRA, never first in full precision."""
    location, base = base_source(spec)
    local = storage.cached_dir(location, scratch)
    if spec.stage.method == "qlora":
        return _load_quantized(local, spec), base
    return load_causal_lm(local, dtype, spec.model.attn_implementation), base


def _check_qlora(stage: StageConfig) -> None:
    if stage.method != "qlora":
        return
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            "method qlora needs bitsandbytes (pip install 'taiyi-ray[gpu]'; the image has it)"
        ) from error


def _peft_config(stage: StageConfig) -> PeftLoraConfig:
    return PeftLoraConfig(
        r=stage.lora.r,
        lora_alpha=stage.lora.alpha,  # type: ignore[arg-type]  # peft scales by alpha / r: a float works
        lora_dropout=stage.lora.dropout,
        target_modules=stage.lora.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )


def build_train_model(spec: TrainSpec, storage: Storage, scratch: str, dtype: torch.dtype) -> TrainModel:
    """Base + adapters (or full weights), ready for `deepspeed.initialize`."""
    stage = spec.stage
    _check_qlora(stage)
    model: Any  # a transformers model, then possibly a peft model wrapping it
    model, base_location = _base_model(spec, storage, scratch, dtype)
    previous = spec.init_from
    if (
        previous is not None
        and previous.method in ("lora", "qlora")
        and previous.adapter
        and spec.init_from_dir
    ):
        adapter_dir = storage.cached_dir(join(spec.init_from_dir, previous.adapter), scratch)
        model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=stage.method != "full")
        if stage.method == "full":
            model = model.merge_and_unload()
        log.info("continuing from %s (%s adapter)", spec.init_from_dir, previous.method)
    elif stage.method in ("lora", "qlora"):
        model = get_peft_model(model, _peft_config(stage))
    model.config.use_cache = False
    if stage.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if stage.method != "full":
            model.enable_input_require_grads()
    if stage.liger_kernel:
        apply_liger(model, on_gpu=stage.use_gpu and torch.cuda.is_available())
    return TrainModel(model, base_location)


def _load_quantized(directory: str, spec: TrainSpec) -> PreTrainedModel:
    """QLoRA as Taiyi did it: the base in 4-bit NF4 with double quantisation and bf16 compute, on this
    worker's GPU (bitsandbytes' CPU backend on CPU), then prepared for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    device = torch.cuda.current_device() if spec.stage.use_gpu and torch.cuda.is_available() else "cpu"
    quantized = AutoModelForCausalLM.from_pretrained(
        directory,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        device_map={"": device},
        attn_implementation=spec.model.attn_implementation,
    )
    return prepare_model_for_kbit_training(
        quantized, use_gradient_checkpointing=spec.stage.gradient_checkpointing
    )


def apply_liger(model: torch.nn.Module, on_gpu: bool) -> bool:
    """liger-kernel's fused kernels on the (base) model; True when applied. They are Triton kernels,
    so on CPU the switch falls back to the model's own modules (a config runs anywhere)."""
    if not on_gpu:
        log.warning("liger_kernel: true needs a GPU (Triton kernels): training on CPU without it")
        return False
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as error:
        raise RuntimeError("liger_kernel: true needs the liger-kernel package (GPU only)") from error
    _apply_liger_kernel_to_instance(model=unwrapped(model))
    return True
