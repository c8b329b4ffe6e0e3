"""The model a stage trains: base weights (tiny random Qwen2, a model directory, or the previous stage's
result), then LoRA / QLoRA adapters via peft or full fine-tuning, gradient checkpointing, kernels."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import PreTrainedModel

from taiyi_ray.config.train import StageConfig
from taiyi_ray.model.factory import load_causal_lm
from taiyi_ray.storage import Storage, join
from taiyi_ray.train.spec import TrainSpec

log = logging.getLogger(__name__)


@dataclass
class TrainModel:
    model: torch.nn.Module
    base_location: str  # the base model directory the result's adapter (or weights) belongs to


def _base_model(
    spec: TrainSpec, storage: Storage, scratch: str, dtype: torch.dtype
) -> tuple[PreTrainedModel, str]:
    """The weights this stage starts from: the previous stage's base (or its full weights), or model.base."""
    previous = spec.init_from
    if previous is not None and spec.init_from_dir is not None:
        if previous.method == "full" and previous.weights:
            location = join(spec.init_from_dir, previous.weights)
        else:
            location = previous.base_model
        return load_causal_lm(
            storage.cached_dir(location, scratch), dtype, spec.model.attn_implementation
        ), previous.base_model
    if spec.model.base is None:
        raise ValueError("model.base is not set (the stage job saves a tiny random base and sets it)")
    return load_causal_lm(
        storage.cached_dir(spec.model.base, scratch), dtype, spec.model.attn_implementation
    ), spec.model.base


def _check_qlora(stage: StageConfig) -> None:
    if stage.method != "qlora":
        return
    if not torch.cuda.is_available():
        raise RuntimeError("method qlora needs a CUDA GPU (bitsandbytes 4-bit NF4); on CPU use method: lora")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise RuntimeError("method qlora needs bitsandbytes: pip install bitsandbytes") from error


def _peft_config(stage: StageConfig) -> PeftLoraConfig:
    return PeftLoraConfig(
        r=stage.lora.r,
        lora_alpha=stage.lora.alpha,
        lora_dropout=stage.lora.dropout,
        target_modules=stage.lora.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )


def build_train_model(spec: TrainSpec, storage: Storage, scratch: str, dtype: torch.dtype) -> TrainModel:
    """Base + adapters (or full weights), ready for `deepspeed.initialize`."""
    stage = spec.stage
    _check_qlora(stage)
    model, base_location = _base_model(spec, storage, scratch, dtype)
    if stage.method == "qlora":
        model = _quantize(model, base_location, spec, dtype)
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


def _quantize(
    model: PreTrainedModel, base_location: str, spec: TrainSpec, dtype: torch.dtype
) -> PreTrainedModel:
    """QLoRA as Taiyi did it: the base loaded in 4-bit NF4 with double quantisation, bf16 compute."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if base_location is None:
        raise RuntimeError(
            "qlora needs a base model directory (model.base); the tiny random model is for CPU tests"
        )
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    del model
    quantized = AutoModelForCausalLM.from_pretrained(
        base_location,
        quantization_config=quantization,
        dtype=torch.bfloat16,
        device_map={"": torch.cuda.current_device()},
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
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    _apply_liger_kernel_to_instance(model=base)
    return True
