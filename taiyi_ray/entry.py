"""The job contract shared by every `jobs/*.py` script and `taiyi-ray <job>`.

Each job accepts `--config PATH`, repeated `--set key=value` and `--run-dir DIR` (default: a fresh
directory under the config's storage root), and prints as its LAST stdout line one JSON object with at
least `run_dir` and its key figures. Job handlers are imported lazily so `--help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taiyi_ray.config import JOB_CONFIGS, ConfigError, load_job_config
from taiyi_ray.config.base import StrictModel, absolute_location
from taiyi_ray.runtime import prepare_process_env, setup_logging
from taiyi_ray.storage import join

log = logging.getLogger(__name__)

Handler = Callable[[Any, str, argparse.Namespace], dict[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    """A job: its config model, its own extra flags (mapped to overrides), and its handler."""

    name: str
    description: str
    handler: Handler
    config_required: bool = True
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    overrides: Callable[[argparse.Namespace], list[str]] = lambda args: []


def default_run_dir(storage_root: str, job: str) -> str:
    """`{storage root}/{job}-{YYYYmmdd-HHMMSS}` (next to the root's `shards/`)."""
    return join(storage_root, f"{job}-{time.strftime('%Y%m%d-%H%M%S')}")


def build_parser(spec: JobSpec) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"jobs/{spec.name}.py", description=spec.description)
    parser.add_argument(
        "--config", required=spec.config_required, help="YAML config (e.g. configs/demo.yaml)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set stage1.epochs=2 (repeatable)",
    )
    parser.add_argument("--run-dir", help="where this job writes (local path or s3:// URI)")
    spec.add_arguments(parser)
    return parser


def load_config(spec: JobSpec, args: argparse.Namespace) -> StrictModel:
    model = JOB_CONFIGS[spec.name]
    overrides = [*args.overrides, *spec.overrides(args)]
    if args.config is None:
        from taiyi_ray.config.loader import apply_overrides

        return model.model_validate(apply_overrides({}, overrides))
    return load_job_config(model, args.config, overrides)


def run_job(spec: JobSpec, argv: list[str] | None = None) -> int:
    """Parse arguments, prepare the process, run the handler, print the final JSON line."""
    args = build_parser(spec).parse_args(argv)
    prepare_process_env()
    setup_logging()
    try:
        config = load_config(spec, args)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        return 2
    run_dir = absolute_location(args.run_dir or default_run_dir(config.storage.root, spec.name))  # type: ignore[attr-defined]
    started = time.perf_counter()
    result = spec.handler(config, run_dir, args)
    result.setdefault("run_dir", run_dir)
    result.setdefault("wall_time_s", round(time.perf_counter() - started, 1))
    _stop_ray()  # no forwarded worker log may follow the final line
    sys.stdout.flush()
    print(
        json.dumps({"run_dir": result.pop("run_dir"), **result}, ensure_ascii=False, default=str), flush=True
    )
    return 0


def _stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
