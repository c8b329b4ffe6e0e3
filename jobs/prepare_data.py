"""Data preparation: convert every dataset of the catalogue, write instruction samples, tokenize,
pack and write versioned Parquet shard sets with their manifests.

    ray job submit -- python jobs/prepare_data.py --config configs/demo.yaml [--set k=v ...] [--run-dir DIR]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/prepare_data.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import DataJobConfig
from taiyi_ray.data.job import run_data_job
from taiyi_ray.entry import finish_job, job_parser, start_job


def main(argv: list[str] | None = None) -> int:
    job = start_job(job_parser("prepare_data", __doc__), DataJobConfig, argv)
    return finish_job(job, run_data_job(job.config, job.run_dir))


if __name__ == "__main__":
    sys.exit(main())
