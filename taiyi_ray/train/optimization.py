"""The DeepSpeed JSON, generated from the stage config (one source of truth for the batch maths).

The optimizer and LR schedule are handed to `deepspeed.initialize` as torch objects (AdamW, LambdaLR):
torch's AdamW needs no JIT-built op on CPU, is fused on CUDA, and keeps the schedule code in one place.
"""

from __future__ import annotations

from typing import Any

from taiyi_ray.config.train import StageConfig


def use_bf16(stage: StageConfig, on_gpu: bool) -> bool:
    """bf16 on GPU, fp32 on CPU (`precision: auto`); an explicit bf16 on CPU is honoured."""
    if stage.precision == "auto":
        return on_gpu
    return stage.precision == "bf16"


def build_deepspeed_config(stage: StageConfig, world_size: int, on_gpu: bool) -> dict[str, Any]:
    """DeepSpeed config for `world_size` data-parallel workers."""
    zero: dict[str, Any] = {"stage": stage.zero_stage}
    if stage.zero_stage >= 1:
        zero.update({"overlap_comm": on_gpu, "contiguous_gradients": True, "reduce_bucket_size": 5e7})
    if stage.zero_stage == 3:
        zero.update({"stage3_gather_16bit_weights_on_model_save": False, "stage3_prefetch_bucket_size": 5e7})
    if stage.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    if stage.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": on_gpu}
    bf16 = use_bf16(stage, on_gpu)
    return {
        "train_micro_batch_size_per_gpu": stage.micro_batch_size,
        "gradient_accumulation_steps": stage.gradient_accumulation_steps,
        "train_batch_size": stage.micro_batch_size * stage.gradient_accumulation_steps * world_size,
        "gradient_clipping": stage.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "checkpoint": {"load_universal": False},
    }
