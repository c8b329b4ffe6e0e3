"""Export a trained run (`export.from_run`) as a Hugging Face model directory, merged and in the export
dtype, as a Ray task with the export's memory budget on a worker (never in the head's driver).

    ray job submit -- python jobs/export.py --config configs/demo.yaml --set export.from_run=RUN
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/export.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import ExportJobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.train.export_task import run_export_job


def main(argv: list[str] | None = None) -> int:
    job = start_job(job_parser("export", __doc__), ExportJobConfig, argv)
    return finish_job(job, run_export_job(job.config, job.run_dir))


if __name__ == "__main__":
    sys.exit(main())
