"""The loss of one micro-batch, normalised so that a step's gradient is that of the token mean over the
WHOLE global batch — independent of how its rows are split into micro-batches and workers.

DeepSpeed scales each micro-batch loss by 1/accumulation and averages gradients over workers. With N the
answer tokens of the global batch, giving each micro-batch loss = sum(CE) / (N / (world x accumulation))
makes the update exactly grad(sum of all CE) / N (a mean over answer tokens, not over rows).
"""

from __future__ import annotations

from typing import Any

import torch


def items_per_micro_batch(global_label_tokens: float, world: int, accumulation: int) -> float:
    """The divisor handed to the model's loss (`num_items_in_batch`)."""
    return max(global_label_tokens, 1.0) / (world * accumulation)


def micro_batch_loss(model: Any, batch: dict[str, torch.Tensor], divisor: float) -> torch.Tensor:
    """sum(CE over the batch's answer tokens) / divisor, through the model's own loss (so fused or
    kernel-replaced losses, e.g. liger's, apply). No attention mask: position ids that restart per
    sample make transformers build a block-diagonal causal mask, so packed samples never attend across."""
    divisor_tensor = torch.tensor(divisor, device=batch["input_ids"].device)
    output = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        labels=batch["labels"],
        num_items_in_batch=divisor_tensor,
        use_cache=False,
    )
    return output.loss
