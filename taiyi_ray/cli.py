"""`taiyi-ray`: one command with a subcommand per stage.

- `taiyi-ray <job> ...` for the seven jobs (prepare_data, stage1, stage2, export, evaluate, serve,
  pipeline) runs the job's recipe, `jobs/<job>.py` (installed as `taiyi_ray.jobs.<job>`, the way
  torchtune's `tune run` runs its recipes): the same file `ray job submit -- python jobs/<job>.py` runs.
- `taiyi-ray data {convert,stats,prepare}` and `taiyi-ray data shard` (= the prepare_data job), and
  `taiyi-ray eval score` for the tools: arguments, printing and exit statuses here; the work lives in the
  modules they call (imported when a command runs, so `--help` stays instant).

`taiyi-ray eval score`: score a prediction file against a gold file (DESIGN.md contract).

`taiyi-ray eval score --task {ner,re,ee,tc,tc_multilabel,qa,...} --gold G.jsonl --pred P.jsonl [--strict-spans] --json`
prints `{"precision": p, "recall": r, "f1": f, "accuracy": a, "n": n}` (fractions 0..1, null where a
metric does not apply), then a task's own metrics: ee `argument_precision`, `argument_recall`,
`argument_f1`; the text tasks (qa_open, generation, translation, dialogue) `rouge_l`, `bleu`, `chrf`,
`distinct_2`; sts `pearson`, `spearman`, `unparsed` (`taiyi_ray.eval.text_metrics`). Both files hold
unified records; an evaluation run's `predictions/SET.jsonl`
and `gold/SET.jsonl` are read directly. Exit status 2 when a file cannot be read or scored.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taiyi_ray.config.jobs import DataJobConfig

RECIPES = "taiyi_ray.jobs"  # jobs/ of the repository, mapped into the package by pyproject.toml


def job_names() -> list[str]:
    """The recipes in jobs/: the jobs `taiyi-ray <job>` runs."""
    return sorted(module.name for module in pkgutil.iter_modules(importlib.import_module(RECIPES).__path__))


def run_recipe(name: str, argv: list[str]) -> int:
    """Run `jobs/<name>.py` with `argv`, as `python jobs/<name>.py ...` would."""
    recipe = importlib.import_module(f"{RECIPES}.{name}")
    return int(recipe.main(argv))


def build_tool_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taiyi-ray",
        description="Ray-native two-stage SFT of bilingual biomedical LLMs. Jobs: " + ", ".join(job_names()),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_data_commands(commands)
    add_eval_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in job_names():
        return run_recipe(argv[0], argv[1:])
    if argv[:2] == ["data", "shard"]:
        # Sharding is the prepare_data job (convert -> instruct -> tokenize -> pack -> Parquet + manifest).
        return run_recipe("prepare_data", argv[2:])
    args = build_tool_parser().parse_args(argv)
    return int(args.run(args) or 0)


def add_data_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    data = commands.add_parser("data", help="convert, inspect, prepare and shard datasets")
    sub = data.add_subparsers(dest="data_command", required=True)

    convert = sub.add_parser("convert", help="convert one source file to unified JSONL records")
    convert.add_argument("--format", required=True, help="source format, e.g. bio_tsv, pubtator_cdr, cmeee")
    convert.add_argument("--input", required=True, help="source file (path or s3:// URI)")
    convert.add_argument("--output", required=True, help="OUT.jsonl (rejects go to OUT.rejects.jsonl)")
    convert.add_argument("--on-error", choices=["fail", "quarantine"], default="fail")
    convert.add_argument("--dataset", help="dataset name stored in each record (default: the file's stem)")
    convert.add_argument(
        "--split", default=None, help="split stored in each record (default: from the file name)"
    )
    convert.add_argument(
        "--language", choices=["en", "zh"], default=None, help="default: the format's language"
    )
    convert.add_argument(
        "--unlabelled",
        action="store_true",
        help="the file carries no labels (a test split); without it a record missing its label is an error",
    )
    convert.set_defaults(run=_run_convert)

    stats = sub.add_parser("stats", help="count records, documents, mentions, relations, labels, answers")
    stats.add_argument("file", help="unified JSONL records")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_run_stats)

    coverage = sub.add_parser(
        "coverage",
        help="which datasets of an inventory (Taiyi's 140) taiyi-ray reads, prompts, parses and scores",
    )
    coverage.add_argument(
        "--catalogue", default=None, help="an inventory YAML (default: configs/catalogues/taiyi-140.yaml)"
    )
    coverage.add_argument("--json", action="store_true", help="the last line is one JSON object")
    coverage.set_defaults(run=_run_coverage)

    prepare = sub.add_parser("prepare", help="convert + instruction-format every dataset of a catalogue")
    prepare.add_argument("--config", help="a config with a data section (its catalogue is used)")
    prepare.add_argument("--catalogue", help="a catalogue YAML (instead of --config)")
    prepare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    prepare.add_argument("--output", help="output directory (default: under the storage root)")
    prepare.set_defaults(run=prepare_command)
    # `data shard` (prepare + tokenize + pack + write) is the prepare_data job; taiyi_ray.cli routes it.


def _run_coverage(args: argparse.Namespace) -> int:
    """`taiyi-ray data coverage`: per task family, datasets and covered ones; then what is missing."""
    from taiyi_ray.config.loader import ConfigError
    from taiyi_ray.data.catalogue import coverage, load_inventory
    from taiyi_ray.eval.scoring import SCORE_TASK_OF

    try:
        report = coverage(load_inventory(args.catalogue), SCORE_TASK_OF)
    except (ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.summary()))
        return 0
    print(f"{'family':<28} {'datasets':>8} {'covered':>8}")
    for family, counts in report.by_family.items():
        print(f"{family:<28} {counts.datasets:>8} {counts.covered:>8}")
    print(f"{'all':<28} {report.datasets:>8} {report.covered:>8}")
    for missing in report.uncovered:
        print(f"not covered: {missing.language} {missing.number} {missing.name}: {missing.reason}")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    """`taiyi-ray data convert`: prints the counts; exit status 1 when a record fails in fail mode."""
    from taiyi_ray.data.convert import ConvertError, convert_file
    from taiyi_ray.storage import Storage

    try:
        report = convert_file(
            args.format,
            args.input,
            args.output,
            args.on_error,
            Storage(),
            args.dataset,
            args.split,
            args.language,
            args.unlabelled,
        )
    except ConvertError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "records": report.records,
                "rejects": report.rejects,
                "output": report.output,
                "rejects_file": report.rejects_path,
            }
        )
    )
    return 0


def _run_stats(args: argparse.Namespace) -> int:
    """`taiyi-ray data stats FILE [--json]`."""
    from taiyi_ray.data.convert import ConvertError, compute_stats, format_stats

    try:
        stats = compute_stats(args.file)
    except (ConvertError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(stats, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def prepare_command(args: argparse.Namespace) -> int:
    """`taiyi-ray data prepare --config C | --catalogue C [--set data.k=v] [--output DIR]`: table + JSON line."""
    from taiyi_ray.config.loader import ConfigError
    from taiyi_ray.data.catalogue import load_catalogue
    from taiyi_ray.data.convert import ConvertError
    from taiyi_ray.data.prepare import PrepareError, prepare_samples
    from taiyi_ray.storage import Storage, join

    try:
        config = _prepare_config(args)
        catalogue = load_catalogue(config.data.catalogue)
        storage = Storage(config.storage)
        output_dir = args.output or join(config.storage.root, "prepared", config.data.name)
        result = prepare_samples(catalogue, config.data, storage, output_dir, progress=True)
    except (ConfigError, ConvertError, PrepareError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.table())
    summary = {
        "output_dir": result.output_dir,
        "sample_files": result.sample_files,
        "records": result.totals.records,
        "rejects": result.totals.rejects,
        "decontaminated": result.totals.decontaminated,
        "samples": result.totals.samples,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _prepare_config(args: argparse.Namespace) -> DataJobConfig:
    from taiyi_ray.config.jobs import DataJobConfig, load_job_config
    from taiyi_ray.config.loader import ConfigError

    overrides = list(args.overrides or [])
    if args.catalogue:
        overrides.append(f"data.catalogue={args.catalogue}")
    if not args.config and not args.catalogue:
        raise ConfigError("data prepare: give --config (a config with a data section) or --catalogue C.yaml")
    return load_job_config(DataJobConfig, args.config, overrides)


def add_eval_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `eval score` under the `taiyi-ray` tool parser."""
    from taiyi_ray.eval.scoring import SCORE_TASKS

    evaluation = commands.add_parser(
        "eval", help="score predictions (the evaluation job is `taiyi-ray evaluate`)"
    )
    sub = evaluation.add_subparsers(dest="eval_command", required=True)
    score = sub.add_parser("score", help="score predicted records against gold records (matched by id)")
    score.add_argument(
        "--task",
        required=True,
        choices=SCORE_TASKS,
        help="qa covers yes/no/maybe and options; qa_open, generation, translation, dialogue and sts score text",
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
    from taiyi_ray.eval.finalise import RecordFileError, read_gold, read_predictions
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


if __name__ == "__main__":
    sys.exit(main())
