"""Entry point for `ray job submit -- python jobs/stage1.py --config CFG [--set k=v ...] [--run-dir DIR]`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, wherever Ray runs us

from taiyi_ray.entry import run_job
from taiyi_ray.job_specs import JOB_SPECS

if __name__ == "__main__":
    sys.exit(run_job(JOB_SPECS["stage1"]))
