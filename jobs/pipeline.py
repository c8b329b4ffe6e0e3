"""The whole recipe in one job: data preparation -> stage 1 -> stage 2 -> export -> evaluation (`make demo`
runs it on configs/demo.yaml, with --serve-check).

    ray job submit -- python jobs/pipeline.py --config configs/demo.yaml [--set k=v ...] [--serve-check]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/pipeline.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import PipelineJobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.pipeline import run_pipeline


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("pipeline", __doc__)
    parser.add_argument(
        "--serve-check",
        action="store_true",
        help="after evaluation, serve the exported model and answer one real HTTP request (make demo)",
    )
    job = start_job(parser, PipelineJobConfig, argv)
    return finish_job(job, run_pipeline(job.config, job.run_dir, serve_check=job.args.serve_check))


if __name__ == "__main__":
    sys.exit(main())
