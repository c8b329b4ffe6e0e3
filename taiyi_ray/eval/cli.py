"""`taiyi-ray eval score`: score a prediction file against a gold file (DESIGN.md contract).

`taiyi-ray eval score --task {ner,re,tc,tc_multilabel,qa} --gold G.jsonl --pred P.jsonl [--strict-spans] --json`
prints `{"precision": p, "recall": r, "f1": f, "accuracy": a, "n": n}` (fractions 0..1, null where a
metric does not apply). Both files hold unified records; an evaluation run's `predictions/SET.jsonl`
and `gold/SET.jsonl` are read directly. Exit status 2 when a file cannot be read or scored.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_eval_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `eval score` under the `taiyi-ray` tool parser."""
    from taiyi_ray.eval.scoring import SCORE_TASKS

    evaluation = commands.add_parser(
        "eval", help="score predictions (the evaluation job is `taiyi-ray evaluate`)"
    )
    sub = evaluation.add_subparsers(dest="eval_command", required=True)
    score = sub.add_parser("score", help="score predicted records against gold records (matched by id)")
    score.add_argument(
        "--task", required=True, choices=SCORE_TASKS, help="qa covers yes/no/maybe and options"
    )
    score.add_argument("--gold", required=True, help="gold unified JSONL (path or s3:// URI)")
    score.add_argument(
        "--pred", required=True, help="predicted unified JSONL, e.g. RUN/predictions/SET.jsonl"
    )
    score.add_argument(
        "--strict-spans",
        action="store_true",
        help="ner: score (document, type, offsets) spans as seqeval does, not de-duplicated texts",
    )
    score.add_argument("--json", action="store_true", help="print one JSON object")
    score.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from taiyi_ray.eval.records_io import RecordFileError, read_gold, read_predictions
    from taiyi_ray.eval.scoring import ScoringError, score_records
    from taiyi_ray.storage import Storage

    storage = Storage()
    try:
        gold = read_gold(args.gold, storage)
        predicted = read_predictions(args.pred, storage)
        unknown = sorted(set(predicted) - {record.id for record in gold})
        if unknown:
            raise ScoringError(
                f"{args.pred}: {len(unknown)} predicted ids are not in {args.gold}, e.g. {unknown[:3]}; "
                "expected predictions for gold ids only"
            )
        scored = score_records(args.task, gold, predicted, strict_spans=args.strict_spans)
    except (RecordFileError, ScoringError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = scored.score.as_dict()
    if args.json:
        print(json.dumps(result))
    else:
        shown = ", ".join(f"{key} {'n/a' if value is None else value}" for key, value in result.items())
        print(f"{args.task}: {shown}")
    return 0
