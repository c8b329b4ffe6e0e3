"""The seven jobs of DESIGN.md: their flags and handlers (imported lazily, explicitly — no string imports)."""

from __future__ import annotations

import argparse
from typing import Any

from taiyi_ray.entry import JobSpec


def _prepare_data(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from taiyi_ray.data.job import run_data_job

    return run_data_job(config, run_dir)


def _stage(name: str):
    def handler(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
        from taiyi_ray.pipeline import run_stage

        return run_stage(config, name, run_dir, resume=args.resume)

    return handler


def _stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )


def _export(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from taiyi_ray.train.export_task import run_export_job

    return run_export_job(config, run_dir)


def _evaluate(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from taiyi_ray.eval.job import run_eval_job

    return run_eval_job(config, run_dir, oracle=args.oracle, oracle_noise=args.oracle_noise)


def _eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--oracle", action="store_true", help="answer every item with its own gold answer")
    parser.add_argument(
        "--oracle-noise",
        type=float,
        default=0.0,
        metavar="P",
        help="with --oracle: corrupt a seeded fraction P",
    )
    parser.add_argument("--limit", type=int, help="at most N items per set")
    parser.add_argument("--model", help="an exported model directory")
    parser.add_argument("--endpoint", help="a running taiyi-ray Serve endpoint (http://127.0.0.1:8000)")


def _eval_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.limit is not None:
        overrides.append(f"eval.limit={args.limit}")
    if args.model:
        overrides.append(f"eval.model={args.model}")
    if args.endpoint:
        overrides.append(f"eval.endpoint={args.endpoint}")
    return overrides


def _serve(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from taiyi_ray.serve.job import run_serve_job

    return run_serve_job(config, run_dir, ready_seconds=args.exit_after_ready_s)


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a Hugging Face model directory (an export run's model/)")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--exit-after-ready-s", type=float, default=None, help=argparse.SUPPRESS)


def _serve_overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.model:
        overrides.append(f"serve.model={args.model}")
    if args.host:
        overrides.append(f"serve.host={args.host}")
    if args.port is not None:
        overrides.append(f"serve.port={args.port}")
    return overrides


def _pipeline(config: Any, run_dir: str, args: argparse.Namespace) -> dict[str, Any]:
    from taiyi_ray.pipeline import run_pipeline

    return run_pipeline(config, run_dir, serve_check=args.serve_check)


def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serve-check",
        action="store_true",
        help="after evaluation, serve the exported model and answer one real HTTP request (make demo)",
    )


JOB_SPECS: dict[str, JobSpec] = {
    "prepare_data": JobSpec(
        "prepare_data", "Convert, instruction-format, tokenize and shard the catalogue.", _prepare_data
    ),
    "stage1": JobSpec(
        "stage1", "Stage-1 SFT (Ray Train + DeepSpeed).", _stage("stage1"), add_arguments=_stage_arguments
    ),
    "stage2": JobSpec(
        "stage2", "Stage-2 SFT, continuing stage 1.", _stage("stage2"), add_arguments=_stage_arguments
    ),
    "export": JobSpec("export", "Export a trained run as a Hugging Face model directory.", _export),
    "evaluate": JobSpec(
        "evaluate",
        "Batch evaluation over an evaluation catalogue.",
        _evaluate,
        add_arguments=_eval_arguments,
        overrides=_eval_overrides,
    ),
    "serve": JobSpec(
        "serve",
        "Serve a model with Ray Serve (OpenAI-compatible API).",
        _serve,
        config_required=False,
        add_arguments=_serve_arguments,
        overrides=_serve_overrides,
    ),
    "pipeline": JobSpec(
        "pipeline",
        "Data -> stage 1 -> stage 2 -> export -> evaluation in one job.",
        _pipeline,
        add_arguments=_pipeline_arguments,
    ),
}
