"""`taiyi-ray`: one command with a subcommand per stage.

- `taiyi-ray <job> ...` for the seven jobs (prepare_data, stage1, stage2, export, evaluate, serve,
  pipeline): exactly the `jobs/<job>.py` contract (`--config`, `--set`, `--run-dir`).
- `taiyi-ray data {convert,stats,prepare}` and `taiyi-ray data shard` (= the prepare_data job), and `taiyi-ray eval score` for the tools.
"""

from __future__ import annotations

import argparse
import sys

from taiyi_ray.entry import run_job
from taiyi_ray.job_specs import JOB_SPECS


def build_tool_parser() -> argparse.ArgumentParser:
    from taiyi_ray.data.cli import add_data_commands
    from taiyi_ray.eval.cli import add_eval_commands

    parser = argparse.ArgumentParser(
        prog="taiyi-ray",
        description="Ray-native two-stage SFT of bilingual biomedical LLMs. Jobs: " + ", ".join(JOB_SPECS),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_data_commands(commands)
    add_eval_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in JOB_SPECS:
        return run_job(JOB_SPECS[argv[0]], argv[1:])
    if argv[:2] == ["data", "shard"]:
        # Sharding is the prepare_data job (convert -> instruct -> tokenize -> pack -> Parquet + manifest).
        return run_job(JOB_SPECS["prepare_data"], argv[2:])
    args = build_tool_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
