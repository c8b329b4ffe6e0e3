"""Batch evaluation over an evaluation catalogue (a model directory, a running endpoint, or the oracle):
results.json, predictions, report.md.

    ray job submit -- python jobs/evaluate.py --config configs/eval-13.yaml [--model DIR | --endpoint URL]
"""

import sys
from pathlib import Path

if not __package__:  # run as a file (`python jobs/evaluate.py`): the repo root, wherever Ray runs us
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.entry import finish_job, job_parser, start_job
from taiyi_ray.eval.job import run_eval_job


def main(argv: list[str] | None = None) -> int:
    parser = job_parser("evaluate", __doc__)
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
    fields = {"limit": "eval.limit", "model": "eval.model", "endpoint": "eval.endpoint"}
    job = start_job(parser, EvalJobConfig, argv, fields)
    return finish_job(
        job, run_eval_job(job.config, job.run_dir, oracle=job.args.oracle, oracle_noise=job.args.oracle_noise)
    )


if __name__ == "__main__":
    sys.exit(main())
