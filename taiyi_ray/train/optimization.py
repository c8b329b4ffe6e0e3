"""How a stage optimizes: the DeepSpeed JSON (generated from the stage config: one source of truth for
the batch maths), the optimizer and the learning-rate schedule.

The optimizer and LR schedule are handed to `deepspeed.initialize` as torch objects (AdamW, LambdaLR):
torch's AdamW needs no JIT-built op on CPU, is fused on CUDA, and keeps the schedule code in one place.
With `offload_optimizer` the optimizer states live in host memory and ZeRO-Offload steps them there with
DeepSpeed's own CPU Adam (`DeepSpeedCPUAdam`, AdamW mode): DeepSpeed refuses a torch optimizer once the
optimizer is offloaded. CPU Adam is a C++ op that DeepSpeed JIT-builds on first use (about 100 s on a
2-core machine) into `TORCH_EXTENSIONS_DIR` (set by `taiyi_ray.runtime.base_env`, default
`.cache/torch_extensions` in the repository, forwarded to Ray workers): later runs load the cached build.
Schedules are multipliers of the peak lr (for LambdaLR):

- constant_with_warmup (Taiyi): linear warm-up over `warmup_ratio` of the steps, then constant.
- cosine / linear: warm-up, then decay to `min_lr_ratio` x peak at the last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taiyi_ray.config.train import StageConfig

if TYPE_CHECKING:
    import torch


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
        "train_batch_size": stage.rows_per_step * world_size,
        "gradient_clipping": stage.max_grad_norm,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        "checkpoint": {"load_universal": False},
    }


def lr_multiplier(
    kind: str, total_steps: int, warmup_ratio: float, min_lr_ratio: float = 0.0
) -> Callable[[int], float]:
    warmup = math.ceil(warmup_ratio * total_steps)

    def multiplier(step: int) -> float:
        # LambdaLR calls this with the number of optimizer steps taken; step 0 trains at 1/warmup.
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant_with_warmup":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if kind == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif kind == "linear":
            shape = 1.0 - progress
        else:
            raise ValueError(f"unknown lr schedule {kind!r}; expected constant_with_warmup, cosine or linear")
        return min_lr_ratio + (1.0 - min_lr_ratio) * shape

    return multiplier


def build_optimizer(
    trainable: list[torch.nn.Parameter], stage: StageConfig, total_steps: int, on_gpu: bool
) -> tuple[Any, Any]:
    """AdamW (fused on CUDA; DeepSpeed's CPU Adam when the optimizer is offloaded) and its LambdaLR
    schedule over the stage's `total_steps`."""
    import torch

    lr, betas, eps, decay = stage.learning_rate, stage.adam_betas, stage.adam_epsilon, stage.weight_decay
    optimizer: torch.optim.Optimizer
    if stage.offload_optimizer:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        optimizer = DeepSpeedCPUAdam(
            trainable, lr=lr, betas=betas, eps=eps, weight_decay=decay, adamw_mode=True
        )
    else:
        optimizer = torch.optim.AdamW(
            trainable, lr=lr, betas=betas, eps=eps, weight_decay=decay, fused=on_gpu
        )
    multiplier = lr_multiplier(stage.lr_schedule, total_steps, stage.warmup_ratio, stage.min_lr_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
