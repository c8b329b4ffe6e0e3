"""Conversion throughput per source format on the real files of ../shared/data: one JSON line each.

    python benchmarks/convert.py [--shared-data DIR] [--repeat N]

Each line: {"format", "file", "records", "bytes", "seconds", "records_per_s", "mb_per_s", "synthetic"}; the
best of N timed passes of the converter alone (read + parse + validate, no output written). LitCovid,
ShareGPT and Alpaca have no real file there: they are timed on files generated from real PubMedQA and
MedQA items in those layouts (`"synthetic": true`); `unified_jsonl` reads the converted BC5CDR test set.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from taiyi_ray.config.data import Language
from taiyi_ray.data.convert import convert_file
from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.storage import Storage

REAL_FILES: list[tuple[str, str, Language]] = [
    ("bio_tsv", "BC5CDR-Chem/test.tsv", "en"),
    ("bio_tsv", "NCBI-Disease/train.tsv", "en"),
    ("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en"),
    ("cmeee", "CMeEE/CMeEE-V2_dev.json", "zh"),
    ("cmeie", "CMeIE/CMeIE-V2_dev.jsonl", "zh"),
    ("kuake_qic", "KUAKE-QIC/KUAKE-QIC_train.json", "zh"),
    ("hoc_tsv", "HoC/train.tsv", "en"),
    ("pubmedqa", "PubMedQA/ori_pqal.json", "en"),
    ("medqa_jsonl", "MedQA-USMLE/test.jsonl", "en"),
    ("medqa_jsonl", "MedQA-MCMLE/test.jsonl", "zh"),
]


def default_shared_data() -> Path:
    shared = os.environ.get("TAIYI_SHARED") or str(Path(__file__).resolve().parents[1].parent / "shared")
    return Path(os.environ.get("TAIYI_SHARED_DATA", Path(shared) / "data"))


def time_converter(fmt: str, path: Path, language: Language, repeat: int) -> tuple[int, float]:
    """(records, best seconds) of `repeat` passes; a rejected item is an error (these files are clean)."""
    best = float("inf")
    records = 0
    for _ in range(repeat):
        source = Source(uri=str(path), dataset=path.stem, split="test", language=language, storage=Storage())
        started = time.perf_counter()
        records = 0
        for item in FORMATS[fmt](source):
            if isinstance(item, BadRecord):
                raise SystemExit(f"{item.describe()}: benchmark files must convert cleanly")
            records += 1
        best = min(best, time.perf_counter() - started)
    return records, best


def synthetic_files(shared_data: Path, directory: Path) -> list[tuple[str, Path, Language]]:
    """LitCovid CSV, ShareGPT JSONL and Alpaca JSON built from real PubMedQA / MedQA text, and unified JSONL."""
    pqal = json.loads((shared_data / "PubMedQA/ori_pqal.json").read_text(encoding="utf-8"))
    litcovid = directory / "litcovid.csv"
    with litcovid.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["pmid", "journal", "title", "abstract", "keywords", "pub_type", "authors", "doi", "label"]
        )
        for pmid, item in pqal.items():
            writer.writerow(
                [
                    pmid,
                    "J",
                    item["QUESTION"],
                    " ".join(item["CONTEXTS"]),
                    "",
                    "Article",
                    "A",
                    "",
                    "Treatment;Mechanism",
                ]
            )
    questions = [
        json.loads(line)
        for line in (shared_data / "MedQA-USMLE/test.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    sharegpt = directory / "sharegpt.jsonl"
    sharegpt.write_text(
        "".join(
            json.dumps(
                {
                    "conversations": [
                        {"from": "human", "value": q["question"]},
                        {"from": "gpt", "value": q["answer"]},
                    ]
                }
            )
            + "\n"
            for q in questions
        ),
        encoding="utf-8",
    )
    alpaca = directory / "alpaca.json"
    alpaca.write_text(
        json.dumps([{"instruction": q["question"], "input": "", "output": q["answer"]} for q in questions]),
        encoding="utf-8",
    )
    unified = directory / "unified.jsonl"
    convert_file(
        "pubtator_cdr",
        str(shared_data / "BC5CDR-CDR/CDR_TestSet.PubTator.txt"),
        str(unified),
        "fail",
        Storage(),
    )
    return [
        ("litcovid_csv", litcovid, "en"),
        ("sharegpt_jsonl", sharegpt, "en"),
        ("alpaca_json", alpaca, "en"),
        ("unified_jsonl", unified, "en"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-data", type=Path, default=default_shared_data())
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per file; the best is reported")
    args = parser.parse_args(argv)
    if not args.shared_data.is_dir():
        print(
            f"error: {args.shared_data} not found (set TAIYI_SHARED_DATA or --shared-data)", file=sys.stderr
        )
        return 1
    with tempfile.TemporaryDirectory() as scratch:
        runs = [(fmt, args.shared_data / relative, language, False) for fmt, relative, language in REAL_FILES]
        runs += [
            (fmt, path, language, True)
            for fmt, path, language in synthetic_files(args.shared_data, Path(scratch))
        ]
        for fmt, path, language, synthetic in runs:
            records, seconds = time_converter(fmt, path, language, args.repeat)
            size = path.stat().st_size
            shown = path.name if synthetic else str(path.relative_to(args.shared_data))
            print(json.dumps({
                "format": fmt, "file": shown, "records": records, "bytes": size, "seconds": round(seconds, 4),
                "records_per_s": round(records / seconds), "mb_per_s": round(size / seconds / 1e6, 2), "synthetic": synthetic,
            }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
