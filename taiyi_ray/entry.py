"""The job contract every `jobs/*.py` recipe keeps (and `taiyi-ray <job>`, which runs the same recipe).

Each job accepts `--config PATH`, repeated `--set key=value` and `--run-dir DIR` (default: a fresh
directory under the config's storage root), and prints as its LAST stdout line one JSON object with at
least `run_dir` and its key figures. A recipe reads, in order:

    parser = job_parser("stage1", __doc__)          # the contract's flags (+ the job's own)
    job = start_job(parser, Stage1JobConfig, argv)  # parse, validate the config, pick the run dir
    return finish_job(job, run_stage(...))          # the one package function, then the result line
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from taiyi_ray.config.base import absolute_location
from taiyi_ray.config.jobs import JobConfig, load_job_config
from taiyi_ray.config.loader import ConfigError
from taiyi_ray.runtime import prepare_process_env, setup_logging
from taiyi_ray.storage import join

ConfigT = TypeVar("ConfigT", bound=JobConfig)


@dataclass(frozen=True)
class Job(Generic[ConfigT]):
    """A job being run: its parsed flags, its validated config, where it writes, and when it started."""

    name: str
    args: argparse.Namespace
    config: ConfigT
    run_dir: str
    started: float


def default_run_dir(storage_root: str, job: str) -> str:
    """`{storage root}/{job}-{YYYYmmdd-HHMMSS}` (next to the root's `shards/`)."""
    return join(storage_root, f"{job}-{time.strftime('%Y%m%d-%H%M%S')}")


def job_parser(
    name: str, description: str | None, *, config_required: bool = True
) -> argparse.ArgumentParser:
    """The contract's flags; a recipe adds its own before `start_job`."""
    parser = argparse.ArgumentParser(
        prog=f"jobs/{name}.py", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(job=name)
    parser.add_argument("--config", required=config_required, help="YAML config (e.g. configs/demo.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set stage1.epochs=2 (repeatable)",
    )
    parser.add_argument("--run-dir", help="where this job writes (local path or s3:// URI)")
    return parser


def flag_overrides(args: argparse.Namespace, fields: Mapping[str, str]) -> list[str]:
    """`--set` overrides for the job's own flags that stand for config fields (flag dest -> dotted field);
    flags left unset override nothing."""
    return [
        f"{field}={getattr(args, dest)}" for dest, field in fields.items() if getattr(args, dest) is not None
    ]


def start_job(
    parser: argparse.ArgumentParser,
    config_model: type[ConfigT],
    argv: list[str] | None = None,
    flag_fields: Mapping[str, str] | None = None,
) -> Job[ConfigT]:
    """Parse the flags, prepare the process, validate the config (a config error exits with status 2,
    naming the file, line and field) and choose the run dir."""
    args = parser.parse_args(argv)
    prepare_process_env()
    setup_logging()
    overrides = [*args.overrides, *flag_overrides(args, flag_fields or {})]
    try:
        config = load_job_config(config_model, args.config, overrides)
    except ConfigError as error:
        print(f"config error:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None
    run_dir = absolute_location(args.run_dir or default_run_dir(config.storage.root, args.job))
    return Job(args.job, args, config, run_dir, time.perf_counter())


def finish_job(job: Job[Any], result: Mapping[str, Any] | BaseModel) -> int:
    """Print the job's result line (the LAST stdout line: `run_dir` first, then its figures); 0."""
    figures = result.model_dump(mode="json") if isinstance(result, BaseModel) else dict(result)
    figures.setdefault("run_dir", job.run_dir)
    figures.setdefault("wall_time_s", round(time.perf_counter() - job.started, 1))
    _stop_ray()  # no forwarded worker log may follow the final line
    sys.stdout.flush()
    print(
        json.dumps({"run_dir": figures.pop("run_dir"), **figures}, ensure_ascii=False, default=str),
        flush=True,
    )
    return 0


def _stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
