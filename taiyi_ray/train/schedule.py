"""Learning-rate schedules as multipliers of the peak lr (for torch's LambdaLR).

- constant_with_warmup (Taiyi): linear warm-up over `warmup_ratio` of the steps, then constant.
- cosine / linear: warm-up, then decay to `min_lr_ratio` x peak at the last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable


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
