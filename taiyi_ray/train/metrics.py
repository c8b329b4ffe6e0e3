"""Per-step metrics: loss, lr, grad norm, real-token throughput, MFU; written by rank 0 to
`metrics.jsonl` and TensorBoard in the run dir and logged as progress lines on the driver.

MFU (PaLM): model FLOPs per trained token = 6N + 12*L*h*T (4N + 12*L*h*T for a frozen base with LoRA,
whose frozen weights get no weight gradients), N = matmul parameters incl. the LM head (LoRA's own small
matrices and gradient-checkpointing recompute not counted), T = the row length — the convention of
../shared/gpu/sft_anchor.py, so that our MFU and the anchor's compare like with like. Our rows vary in
length, so T is their token-weighted mean (sum t^2 / sum t: each token attends within its row), which
is T itself for rows of one length; flattening a micro-batch into one sequence does not change it.
MFU = real tokens/s per device x FLOPs per token / peak FLOP/s of the device. Null on CPU.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from taiyi_ray.train.spec import ValidationScore

log = logging.getLogger(__name__)

# Dense bf16 peak FLOP/s by CUDA device name (vendor data sheets, without sparsity). Matched in order,
# so the specific names come first: "H100 PCIe" before "H100", "A100" before "A10", "L40S" before "L4".
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200 NVL", 835e12),
    ("H100", 989e12),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("H800", 989e12),
    ("A100", 312e12),  # SXM and PCIe alike
    ("A800", 312e12),
    ("L40S", 362e12),
    ("A40", 149.7e12),
    ("L4", 121e12),
    ("A10", 125e12),
)


def peak_flops(configured: float | None, device_name: str | None = None) -> float | None:
    """Peak FLOP/s of this worker's device: configured (`stage.peak_flops_per_device`), else by the CUDA
    device name; None on CPU or for an unknown GPU (then MFU is null rather than wrong)."""
    if configured is not None:
        return configured
    if device_name is None:
        if not torch.cuda.is_available():
            return None
        device_name = torch.cuda.get_device_name()
    for key, value in PEAK_BF16_FLOPS:
        if key in device_name:
            return value
    log.warning("unknown GPU %r: set stage.peak_flops_per_device for MFU", device_name)
    return None


def flops_per_token(matmul_params: int, layers: int, hidden: int, seq_len: float, frozen_base: bool) -> float:
    """The PaLM count per trained token (see the module docstring); `seq_len` is the row length T."""
    return (4 if frozen_base else 6) * matmul_params + 12 * layers * hidden * seq_len


class MetricsWriter:
    """Rank 0's metrics sink: JSONL + TensorBoard under a local directory mirrored to the run dir."""

    def __init__(self, local_dir: str, existing_lines: list[str], total_steps: int) -> None:
        os.makedirs(local_dir, exist_ok=True)
        self.local_dir = local_dir
        self.path = os.path.join(local_dir, "metrics.jsonl")
        with open(self.path, "w") as handle:
            handle.writelines(line if line.endswith("\n") else line + "\n" for line in existing_lines)
        self.total_steps = total_steps
        self.started = time.perf_counter()
        self._tensorboard: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(os.path.join(local_dir, "tensorboard"))
        except ImportError:  # tensorboard is a dependency; a stripped image may lack it
            log.warning("tensorboard not installed: metrics go to metrics.jsonl only")

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self._tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step" and value is not None:
                    self._tensorboard.add_scalar(f"train/{key}", value, record["step"])
            self._tensorboard.flush()

    def write_validation(self, step: int, scores: Mapping[str, ValidationScore], seconds: float) -> None:
        """One line `{"step": N, "validation": {SET: {"score", "metric", "n"}}}`, TensorBoard, a log line."""
        record = {"step": step, "validation": {name: score.to_json() for name, score in scores.items()}}
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        if self._tensorboard is not None:
            for name, score in scores.items():
                self._tensorboard.add_scalar(f"validation/{name}", score.score, step)
            self._tensorboard.flush()
        shown = ", ".join(
            f"{name} {score.metric} {score.score:.1f} (n={score.n})" for name, score in scores.items()
        )
        log.info("validation at step %d: %s (%.1f s)", step, shown, seconds)

    def progress(self, record: dict[str, Any], first_step: int) -> None:
        """A progress line (Ray forwards worker logs to the driver): step, loss, speed, ETA."""
        elapsed = time.perf_counter() - self.started
        step = record["step"]
        done = max(step - first_step, 1)
        eta_s = elapsed / done * (self.total_steps - step)
        mfu = f" mfu {record['mfu']:.1%}" if record.get("mfu") is not None else ""
        grad_norm = record["grad_norm"] if record["grad_norm"] is not None else float("nan")
        log.info(
            "step %d/%d (%.0f%%) epoch %d loss %.4f lr %.2e grad_norm %.3f tokens/s %.0f%s eta %.0fs",
            step,
            self.total_steps,
            100 * step / self.total_steps,
            record["epoch"],
            record["loss"],
            record["lr"],
            grad_norm,
            record["tokens_per_s"],
            mfu,
            eta_s,
        )

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def is_validation(record: Mapping[str, Any]) -> bool:
    """A validation line of metrics.jsonl (every reader of step metrics skips them)."""
    return "validation" in record


def trim_metrics(lines: list[str], last_step: int) -> list[str]:
    """Metric lines of steps <= last_step (what a resumed run keeps)."""
    kept = []
    for line in lines:
        if line.strip() and json.loads(line).get("step", 0) <= last_step:
            kept.append(line)
    return kept
