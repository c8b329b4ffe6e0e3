"""Stage-1 SFT (Ray Train + DeepSpeed): the paper's first stage, on the catalogue's stage-1 shard sets.

ray job submit -- python jobs/stage1.py --config configs/demo.yaml [--set k=v ...] [--run-dir DIR] [--resume]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/stage1.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import Stage1JobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.pipeline import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("stage1", __doc__)
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    job = start_job(parser, Stage1JobConfig, argv)
    return finish_job(job, run_stage(job.config, "stage1", job.run_dir, resume=job.args.resume))


if __name__ == "__main__":
    sys.exit(main())
