"""What a training run leaves in its run dir besides checkpoints, written from the workers (rank 0
mostly) through the storage layer so it works on s3:// as on local disk:

- `samples/steps-AAAAAAA-BBBBBBB.jsonl`: per step, the consumed sample ids (ranks in order) and their
  datasets, flushed at every checkpoint; `data_fingerprint` = sha256 over all ids in step order.
- `metrics.jsonl`, `tensorboard/`: per-step metrics (trimmed to the checkpoint step on resume).
- `attempts/attempt-NNNN.json`: one per (re)start of the worker group, with the step resumed from.
- `model/`: the stage result (adapter or full weights, tokenizer, `taiyi_model.json`).
- `train_state.json` (`TrainState`): the figures the driver turns into `summary.json` (`StageSummary`).
A file `STOP` in the run dir (written by the driver on SIGTERM) makes the workers checkpoint and exit.

The stage summary's validation figures and `validation.png`, read back from the run's metrics.jsonl.

`summary.json` gets `validation: {SET: {"metric", "last": {"step", "score"}, "best": {"step", "score"}}}`
(best: the highest score, the earliest step on a tie), `validation_s` (seconds spent validating, over
every attempt of the run) and `validation_share` (of the stage's wall time). The curve is drawn beside
the summary, one line per set, on a `Figure` with the Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from taiyi_ray.config.base import StrictModel
from taiyi_ray.data.plan import DataPosition
from taiyi_ray.model.result import TrainedModel, model_dir, write_result
from taiyi_ray.storage import Storage, join
from taiyi_ray.train.checkpoint import discard, scratch_dir
from taiyi_ray.train.metrics import MetricsWriter, is_validation, trim_metrics
from taiyi_ray.train.spec import ShardVersion

log = logging.getLogger(__name__)

STOP_FILE = "STOP"
TRAIN_STATE = "train_state.json"
SUMMARY = "summary.json"


class MixShare(StrictModel):
    samples: int
    share: float  # of the samples the stage consumed


class TrainState(StrictModel):
    """`train_state.json`: what rank 0 measured over the whole run (every attempt), for the driver."""

    steps: int
    samples: int
    tokens: int
    label_tokens: int
    final_loss: float | None
    first_loss: float | None
    epoch_mean_losses: list[float]
    tokens_per_s: float | None
    mfu: float | None
    data_fingerprint: str  # sha256 over the consumed sample ids in step order
    realised_mix: dict[str, MixShare]
    epochs_completed: int
    initial_trainable_l2: float | None
    stopped_early: bool
    validation_s: float


class ScoreAt(StrictModel):
    step: int
    score: float


class ValidationCurveSummary(StrictModel):
    metric: str
    last: ScoreAt
    best: ScoreAt  # the highest score, the earliest step on a tie


class StageSummary(StrictModel):
    """A stage's `summary.json` and its job's result line (with `run_dir` in front): written by
    `write_stage_summary`, read by `read_stage_summary` (the export's model card, the pipeline)."""

    stage: str
    steps: int
    samples: int
    tokens: int
    final_loss: float | None
    tokens_per_s: float | None
    mfu: float | None
    restarts: int  # restarts of the worker group during this job (a resumed job counts from its start)
    resumed_from_step: int | None
    data_fingerprint: str
    first_loss: float | None
    epoch_mean_losses: list[float]
    label_tokens: int
    total_steps: int
    steps_per_epoch: int
    epochs: int
    global_batch_size: int
    num_workers: int
    method: str
    zero_stage: int
    realised_mix: dict[str, MixShare]
    initial_trainable_l2: float | None
    stopped_early: bool
    init_from: str | None
    model_dir: str
    wall_time_s: float
    shard_versions: list[ShardVersion]
    validation: dict[str, ValidationCurveSummary] | None
    validation_s: float
    validation_share: float | None


def write_stage_summary(storage: Storage, run_dir: str, summary: StageSummary) -> None:
    storage.write_json(join(run_dir, SUMMARY), summary.model_dump(mode="json"))


def read_stage_summary(storage: Storage, run_dir: str) -> StageSummary:
    return StageSummary.model_validate(storage.read_json(join(run_dir, SUMMARY)))


def read_train_state(storage: Storage, run_dir: str) -> TrainState:
    return TrainState.model_validate(storage.read_json(join(run_dir, TRAIN_STATE)))


class RunOutputs:
    def __init__(self, storage: Storage, run_dir: str, rank: int) -> None:
        self.storage = storage
        self.run_dir = run_dir
        self.rank = rank
        self.pending: list[dict[str, Any]] = []
        self.pending_from = 1
        self.first_step = 0
        self._last_stop_check = 0.0
        self.initial_trainable_l2: float | None = None
        self.validation_s = 0.0  # seconds spent in validation, over every attempt (kept in checkpoints)

    # -- start ---------------------------------------------------------------------------------------
    def start_attempt(self, resumed_from: int | None) -> None:
        self.first_step = resumed_from or 0
        self.pending_from = self.first_step + 1
        if self.rank != 0:
            return
        attempts = join(self.run_dir, "attempts")
        existing = [item for item in self._list(attempts) if item.endswith(".json")]
        self.storage.write_json(
            join(attempts, f"attempt-{len(existing) + 1:04d}.json"),
            {"resumed_from_step": resumed_from, "started_unix_s": time.time()},
        )

    def metrics_lines(self, last_step: int) -> list[str]:
        location = join(self.run_dir, "metrics.jsonl")
        if not self.storage.exists(location):
            return []
        return trim_metrics(self.storage.read_text(location).splitlines(), last_step)

    def _list(self, location: str) -> list[str]:
        return self.storage.list(location) if self.storage.exists(location) else []

    # -- per step ------------------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """Rank 0 looks for the STOP marker at most every 2 s (a HEAD request on object stores)."""
        now = time.monotonic()
        if now - self._last_stop_check < 2.0:
            return False
        self._last_stop_check = now
        return self.storage.exists(join(self.run_dir, STOP_FILE))

    def record_step(
        self,
        step: int,
        epoch: int,
        sample_ids: list[str],
        datasets: list[str],
        record: dict[str, Any],
        writer: MetricsWriter | None,
    ) -> None:
        """Every rank keeps its own step's sample ids until the next checkpoint (no per-step gather)."""
        self.pending.append({"step": step, "epoch": epoch, "ids": sample_ids, "datasets": datasets})
        if writer is not None:
            writer.write(record)
            writer.progress(record, self.first_step)

    def flush(self, step: int, writer: MetricsWriter | None) -> None:
        """Collective, at a checkpoint: gather every rank's consumed-sample log since the last one into
        one file (ranks in order within each step), and persist the metrics."""
        gathered: list[list[dict[str, Any]] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.pending)
        pending, self.pending = self.pending, []
        if self.rank != 0:
            return
        if pending:
            lines = []
            for index, entry in enumerate(pending):
                parts = [rank_log[index] for rank_log in gathered if rank_log]
                lines.append(
                    {
                        "step": entry["step"],
                        "epoch": entry["epoch"],
                        "ids": [item for part in parts for item in part["ids"]],
                        "datasets": [item for part in parts for item in part["datasets"]],
                    }
                )
            name = f"steps-{self.pending_from:07d}-{step:07d}.jsonl"
            body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            self.storage.write_text(join(self.run_dir, "samples", name), body)
            self.pending_from = step + 1
        if writer is not None:
            with open(writer.path, encoding="utf-8") as handle:
                self.storage.write_text(join(self.run_dir, "metrics.jsonl"), handle.read())
            tensorboard = os.path.join(writer.local_dir, "tensorboard")
            if os.path.isdir(tensorboard):
                self.storage.upload_dir(tensorboard, join(self.run_dir, "tensorboard"))

    # -- end -----------------------------------------------------------------------------------------
    def consumed_log(self, last_step: int) -> list[dict[str, Any]]:
        """The consumed-sample log of steps 1..last_step, in step order (one entry per step)."""
        by_step: dict[int, dict[str, Any]] = {}
        for location in self._list(join(self.run_dir, "samples")):
            for line in self.storage.read_text(location).splitlines():
                if line.strip():
                    entry = json.loads(line)
                    if entry["step"] <= last_step:
                        by_step[entry["step"]] = entry
        missing = [step for step in range(1, last_step + 1) if step not in by_step]
        if missing:
            raise RuntimeError(
                f"{self.run_dir}/samples: no record of steps {missing[:5]}... (log incomplete)"
            )
        return [by_step[step] for step in range(1, last_step + 1)]

    def finish(
        self,
        engine: Any,
        built: Any,
        tokenizer: Any,
        spec: Any,
        last_loss: float | None,
        position: DataPosition,
    ) -> None:
        """Collective: save the stage result (gathering ZeRO-3 partitions), then rank 0 writes figures."""
        import deepspeed

        model = engine.module
        parameters = (
            [p for p in model.parameters() if p.requires_grad]
            if spec.stage.method != "full"
            else list(model.parameters())
        )
        local = scratch_dir("result")
        with deepspeed.zero.GatheredParameters(
            parameters, modifier_rank=None, enabled=spec.stage.zero_stage == 3
        ):
            if self.rank == 0:
                _save_result(model, tokenizer, spec, built.base_location, local)
        if self.rank == 0:
            self.storage.upload_dir(local, model_dir(self.run_dir))
        discard(local)
        if self.rank != 0:
            return
        log_entries = self.consumed_log(position.global_step)
        ids = [item for entry in log_entries for item in entry["ids"]]
        mix = Counter(item for entry in log_entries for item in entry["datasets"])
        lines = [json.loads(line) for line in self.metrics_lines(position.global_step)]
        metrics = [item for item in lines if not is_validation(item)]
        speeds = [item["tokens_per_s"] for item in metrics[1:]] or [item["tokens_per_s"] for item in metrics]
        mfus = [item["mfu"] for item in metrics[1:] if item.get("mfu") is not None]
        state = TrainState(
            steps=position.global_step,
            samples=len(ids),
            tokens=int(sum(item["tokens"] for item in metrics)),
            label_tokens=int(sum(item["label_tokens"] for item in metrics)),
            final_loss=last_loss if last_loss is not None else (metrics[-1]["loss"] if metrics else None),
            first_loss=metrics[0]["loss"] if metrics else None,
            epoch_mean_losses=_epoch_means(metrics),
            tokens_per_s=sum(speeds) / len(speeds) if speeds else None,
            mfu=sum(mfus) / len(mfus) if mfus else None,
            data_fingerprint=hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest(),
            realised_mix={
                name: MixShare(samples=count, share=round(count / max(len(ids), 1), 6))
                for name, count in sorted(mix.items())
            },
            epochs_completed=position.epoch,
            initial_trainable_l2=self.initial_trainable_l2,
            stopped_early=position.global_step < spec.total_steps,
            validation_s=round(self.validation_s, 3),
        )
        self.storage.write_json(join(self.run_dir, TRAIN_STATE), state.model_dump(mode="json"))


def _save_result(model: Any, tokenizer: Any, spec: Any, base_location: str, local: str) -> None:
    """Write adapter (peft) or full weights + tokenizer + taiyi_model.json into `local`."""
    method = spec.stage.method
    if method == "full":
        model.save_pretrained(os.path.join(local, "weights"), safe_serialization=True)
    else:
        model.save_pretrained(os.path.join(local, "adapter"), safe_serialization=True)
    tokenizer.save_pretrained(os.path.join(local, "tokenizer"))
    write_result(
        Storage(),
        local,
        TrainedModel(
            method=method,
            base_model=base_location,
            chat_format=spec.model.chat_format,
            stage=spec.stage_name,
            adapter=None if method == "full" else "adapter",
            weights="weights" if method == "full" else None,
        ),
    )


def _epoch_means(metrics: list[dict[str, Any]]) -> list[float]:
    """Mean step loss per epoch, in epoch order (a less noisy learning signal than first/last step)."""
    by_epoch: dict[int, list[float]] = {}
    for item in metrics:
        by_epoch.setdefault(item["epoch"], []).append(item["loss"])
    return [sum(values) / len(values) for _, values in sorted(by_epoch.items())]


@dataclass(frozen=True)
class Curve:
    """One set's validation scores in step order."""

    metric: str
    points: tuple[tuple[int, float], ...]

    def summary(self) -> ValidationCurveSummary:
        last_step, last_score = self.points[-1]
        best_step, best_score = max(self.points, key=lambda point: (point[1], -point[0]))
        return ValidationCurveSummary(
            metric=self.metric,
            last=ScoreAt(step=last_step, score=last_score),
            best=ScoreAt(step=best_step, score=best_score),
        )


def validation_curves(lines: Sequence[Mapping[str, Any]]) -> dict[str, Curve]:
    """Per set, the (step, score) points of the validation lines (the last line of a step wins)."""
    by_set: dict[str, dict[int, float]] = {}
    metrics: dict[str, str] = {}
    for line in lines:
        if not is_validation(line):
            continue
        for name, value in line["validation"].items():
            by_set.setdefault(name, {})[int(line["step"])] = float(value["score"])
            metrics[name] = value["metric"]
    return {name: Curve(metrics[name], tuple(sorted(points.items()))) for name, points in by_set.items()}


def validation_summary(storage: Storage, run_dir: str, validation_s: float, wall_s: float) -> dict[str, Any]:
    """The summary's validation keys; also writes validation.png when there were validations."""
    location = join(run_dir, "metrics.jsonl")
    text = storage.read_text(location) if storage.exists(location) else ""
    curves = validation_curves([json.loads(line) for line in text.splitlines() if line.strip()])
    if curves:
        storage.write_bytes(join(run_dir, "validation.png"), curves_png(curves, run_dir))
    return {
        "validation": {name: curve.summary() for name, curve in curves.items()} or None,
        "validation_s": round(validation_s, 1),
        "validation_share": round(validation_s / wall_s, 4) if wall_s > 0 else None,
    }


def curves_png(curves: Mapping[str, Curve], title: str) -> bytes:
    from matplotlib.backends.backend_agg import (
        FigureCanvasAgg,  # only where a curve is drawn (GPU images may lack it)
    )
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for name, curve in curves.items():
        steps, scores = zip(*curve.points, strict=True)
        axes.plot(steps, scores, marker="o", markersize=3, label=f"{name} ({curve.metric})")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("score (%)")
    axes.set_ylim(0, 100)
    axes.set_title(f"validation: {title}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
