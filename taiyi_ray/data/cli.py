"""`taiyi-ray data ...` subcommands: argument wiring only; the work lives in the modules they call."""

from __future__ import annotations

import argparse


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
    convert.set_defaults(run=_run_convert)

    stats = sub.add_parser("stats", help="count records, documents, mentions, relations, labels, answers")
    stats.add_argument("file", help="unified JSONL records")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_run_stats)

    prepare = sub.add_parser("prepare", help="convert + instruction-format every dataset of a catalogue")
    prepare.add_argument("--config", help="a config with a data section (its catalogue is used)")
    prepare.add_argument("--catalogue", help="a catalogue YAML (instead of --config)")
    prepare.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    prepare.add_argument("--output", help="output directory (default: under the storage root)")
    prepare.set_defaults(run=_run_prepare)
    # `data shard` (prepare + tokenize + pack + write) is the prepare_data job; taiyi_ray.cli routes it.


def _run_convert(args: argparse.Namespace) -> int:
    from taiyi_ray.data.convert import convert_command

    return convert_command(args)


def _run_stats(args: argparse.Namespace) -> int:
    from taiyi_ray.data.stats import stats_command

    return stats_command(args)


def _run_prepare(args: argparse.Namespace) -> int:
    from taiyi_ray.data.prepare import prepare_command

    return prepare_command(args)
