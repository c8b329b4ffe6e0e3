"""Serve a model with Ray Serve behind an OpenAI-compatible API; prints `{"run_dir", "url", ...}` once ready
and keeps serving.

    ray job submit -- python jobs/serve.py --model DIR [--config CFG] [--host H] [--port P]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/serve.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse

from taiyi_ray.config.jobs import ServeJobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.serve.job import run_serve_job


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("serve", __doc__, config_required=False)
    parser.add_argument("--model", help="a Hugging Face model directory (an export run's model/)")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    parser.add_argument("--exit-after-ready-s", type=float, default=None, help=argparse.SUPPRESS)
    fields = {"model": "serve.model", "host": "serve.host", "port": "serve.port"}
    job = start_job(parser, ServeJobConfig, argv, fields)
    return finish_job(job, run_serve_job(job.config, job.run_dir, ready_seconds=job.args.exit_after_ready_s))


if __name__ == "__main__":
    sys.exit(main())
