"""Stage-2 SFT (Ray Train + DeepSpeed), continuing stage 1 (`stage2.init_from`: its run dir or URI).

ray job submit -- python jobs/stage2.py --config configs/demo.yaml --set stage2.init_from=RUN [--resume]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/stage2.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import Stage2JobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.pipeline import run_stage


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("stage2", __doc__)
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint"
    )
    job = start_job(parser, Stage2JobConfig, argv)
    return finish_job(job, run_stage(job.config, "stage2", job.run_dir, resume=job.args.resume))


if __name__ == "__main__":
    sys.exit(main())
