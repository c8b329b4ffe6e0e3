"""The stage summary's validation figures and `validation.png`, read back from the run's metrics.jsonl.

`summary.json` gets `validation: {SET: {"metric", "last": {"step", "score"}, "best": {"step", "score"}}}`
(best: the highest score, the earliest step on a tie), `validation_s` (seconds spent validating, over
every attempt of the run) and `validation_share` (of the stage's wall time). The curve is drawn beside
the summary, one line per set, on a `Figure` with the Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taiyi_ray.storage import Storage, join
from taiyi_ray.train.metrics import is_validation


@dataclass(frozen=True)
class Curve:
    """One set's validation scores in step order."""

    metric: str
    points: tuple[tuple[int, float], ...]

    def summary(self) -> dict[str, Any]:
        last_step, last_score = self.points[-1]
        best_step, best_score = max(self.points, key=lambda point: (point[1], -point[0]))
        return {
            "metric": self.metric,
            "last": {"step": last_step, "score": last_score},
            "best": {"step": best_step, "score": best_score},
        }


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
