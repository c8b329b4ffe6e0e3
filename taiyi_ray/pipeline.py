"""`jobs/pipeline.py`: data preparation -> stage 1 -> stage 2 -> export -> evaluation in one job.

Each step writes into its own sub-directory of the pipeline's run dir and hands its result to the next
through the config keys a user would set by hand (`stage2.init_from`, `export.from_run`, `eval.model`),
so the pipeline is exactly the sequence of the separate jobs. Ends with a table (step, wall time, key
figure); `serve_check` adds the demo's last step: serve the export and answer one real HTTP request.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.jobs import (
    DataJobConfig,
    EvalJobConfig,
    ExportJobConfig,
    PipelineJobConfig,
    ServeJobConfig,
    Stage1JobConfig,
    Stage2JobConfig,
    StageJobConfig,
)
from taiyi_ray.config.train import StageConfig
from taiyi_ray.storage import Storage, join

if TYPE_CHECKING:
    from taiyi_ray.train.outputs import StageSummary

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT", bound=BaseModel)


@dataclass(frozen=True)
class StepTiming:
    name: str
    wall_s: float
    figure: str


class PipelineStep(StrictModel):
    wall_s: float
    figure: str


class PipelineResult(StrictModel):
    """The pipeline's `summary.json` and result line."""

    run_dir: str
    steps: dict[str, PipelineStep]
    stage1_final_loss: float | None
    stage2_final_loss: float | None
    model_dir: str
    eval_average: float | None
    wall_time_s: float


def _timed(
    name: str, figure: Callable[[ResultT], str], run: Callable[[], ResultT], timings: list[StepTiming]
) -> ResultT:
    log.info("=== %s ===", name)
    started = time.perf_counter()
    result = run()
    timings.append(StepTiming(name, time.perf_counter() - started, figure(result)))
    log.info("=== %s done in %.1f s: %s ===", name, timings[-1].wall_s, timings[-1].figure)
    return result


def run_stage(config: StageJobConfig, stage_name: str, run_dir: str, resume: bool = False) -> StageSummary:
    """A training stage as its job runs it: validation plan (when `stage.validation` is set) built from
    the config's `eval` section (template seed, decoding), then the Ray Train job."""
    from taiyi_ray.eval.validation import build_validation
    from taiyi_ray.train.job import run_stage_job

    stage: StageConfig = getattr(config, stage_name)
    validation = None
    if stage.validation is not None:
        validation = build_validation(stage.validation, stage.seed, config.eval, Storage(config.storage))
    return run_stage_job(config, stage_name, run_dir, resume=resume, validation=validation)


def run_pipeline(config: PipelineJobConfig, run_dir: str, serve_check: bool = False) -> PipelineResult:
    from taiyi_ray.data.job import run_data_job
    from taiyi_ray.eval.job import run_eval_job
    from taiyi_ray.train.export_task import run_export_job

    shared = {"storage": config.storage, "ray": config.ray, "model": config.model}
    timings: list[StepTiming] = []
    _timed(
        "data",
        lambda r: f"{r.samples} samples, packing efficiency {r.packing_efficiency:.3f}",
        lambda: run_data_job(DataJobConfig(**shared, data=config.data), join(run_dir, "data")),
        timings,
    )
    stage1_dir, stage2_dir = join(run_dir, "stage1"), join(run_dir, "stage2")
    stage1 = _timed(
        "stage1",
        _loss_figure,
        lambda: run_stage(
            Stage1JobConfig(**shared, data=config.data, stage1=config.stage1, eval=config.eval),
            "stage1",
            stage1_dir,
        ),
        timings,
    )
    stage2_config = config.stage2.model_copy(update={"init_from": stage1_dir})
    stage2 = _timed(
        "stage2",
        _loss_figure,
        lambda: run_stage(
            Stage2JobConfig(**shared, data=config.data, stage2=stage2_config, eval=config.eval),
            "stage2",
            stage2_dir,
        ),
        timings,
    )
    export = config.export.model_copy(update={"from_run": stage2_dir})
    exported = _timed(
        "export",
        lambda r: r.model_dir,
        lambda: run_export_job(
            ExportJobConfig(storage=config.storage, ray=config.ray, model=config.model, export=export),
            join(run_dir, "export"),
        ),
        timings,
    )
    evaluation_config = config.eval.model_copy(update={"model": exported.model_dir, "endpoint": None})
    evaluation = _timed(
        "evaluate",
        lambda r: f"average {r.average}",
        lambda: run_eval_job(
            EvalJobConfig(**shared, eval=evaluation_config),
            join(run_dir, "eval"),
            oracle=False,
            oracle_noise=0.0,
        ),
        timings,
    )
    if serve_check:
        from taiyi_ray.serve.job import answer_once

        serve = config.serve.model_copy(update={"model": exported.model_dir, "port": 0})
        _timed(
            "serve",
            lambda r: f"HTTP {r.status}: {r.answer!r}",
            lambda: answer_once(ServeJobConfig(**shared, serve=serve), join(run_dir, "serve")),
            timings,
        )
    summary = PipelineResult(
        run_dir=run_dir,
        steps={step.name: PipelineStep(wall_s=round(step.wall_s, 1), figure=step.figure) for step in timings},
        stage1_final_loss=stage1.final_loss,
        stage2_final_loss=stage2.final_loss,
        model_dir=exported.model_dir,
        eval_average=evaluation.average,
        wall_time_s=round(sum(step.wall_s for step in timings), 1),
    )
    storage = Storage(config.storage)
    storage.write_json(join(run_dir, "summary.json"), summary.model_dump(mode="json"))
    _print_table(timings, run_dir)
    results = storage.read_json(join(run_dir, "eval", "results.json"))
    _print_learned(results, [stage1, stage2])
    return summary


def _loss_figure(result: StageSummary) -> str:
    return f"{result.steps} steps, loss {result.first_loss:.3f} -> {result.final_loss:.3f}"


def _print_learned(results: dict[str, Any], stages: list[StageSummary]) -> None:
    """What the model learned: each set's score beside its trivial baselines and the stages' last
    validation scores (a model that learned nothing scores at its majority baseline or below)."""
    table = Table(title="what it learned (eval/report.md has the details)")
    for column in ("set", "metric", "ours", "majority", "random", "stage1 validation", "stage2 validation"):
        table.add_column(column, justify="left" if column in ("set", "metric") else "right")
    for name, result in results.items():
        baselines = result.get("baselines") or {}
        validated = [_last_validation(stage, name) for stage in stages]
        cells = [result["score"], baselines.get("majority"), baselines.get("random"), *validated]
        table.add_row(name, result["metric"], *("–" if value is None else f"{value:.1f}" for value in cells))
    Console(file=sys.stdout, width=160).print(table)


def _last_validation(stage: StageSummary, set_name: str) -> float | None:
    curve = (stage.validation or {}).get(set_name)
    return None if curve is None else curve.last.score


def _print_table(steps: list[StepTiming], run_dir: str) -> None:
    table = Table(title=f"taiyi-ray pipeline: {run_dir}")
    table.add_column("step")
    table.add_column("wall time", justify="right")
    table.add_column("key figure")
    for step in steps:
        table.add_row(step.name, f"{step.wall_s:.1f} s", step.figure)
    table.add_row("total", f"{sum(step.wall_s for step in steps):.1f} s", "")
    Console(file=sys.stdout, width=160).print(table)
