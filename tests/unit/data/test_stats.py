"""`data stats` counts, per DESIGN.md's definition for each format, on the real files (published numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taiyi_ray.data.convert import compute_stats, convert_file, format_stats
from taiyi_ray.storage import Storage

CASES = [
    # format, file, language, expected subset of the stats object
    (
        "bio_tsv",
        "BC5CDR-Chem/test.tsv",
        "en",
        {"records": 4797, "documents": 4797, "entity_mentions": {"Chemical": 5385}},
    ),
    (
        "bio_tsv",
        "BC5CDR-Dise/test.tsv",
        "en",
        {"records": 4797, "documents": 4797, "entity_mentions": {"Disease": 4424}},
    ),
    (
        "bio_tsv",
        "NCBI-Disease/test.tsv",
        "en",
        {"records": 940, "documents": 940, "entity_mentions": {"Disease": 960}},
    ),
    (
        "pubtator_cdr",
        "BC5CDR-CDR/CDR_TestSet.PubTator.txt",
        "en",
        {
            "records": 500,
            "documents": 500,
            "entity_mentions": {"Chemical": 5385, "Disease": 4424},
            "relations": {"CID": 1066},
        },
    ),
    (
        "cmeee",
        "CMeEE/CMeEE-V2_dev.json",
        "zh",
        {
            "records": 5000,
            "entity_mentions": {
                "bod": 7361,
                "dep": 86,
                "dis": 6328,
                "dru": 1566,
                "equ": 164,
                "ite": 1339,
                "mic": 621,
                "pro": 3319,
                "sym": 5297,
            },
        },
    ),
    (
        "kuake_qic",
        "KUAKE-QIC/KUAKE-QIC_dev.json",
        "zh",
        {"records": 1955, "labels": {"治疗方案": 676, "其他": 395, "病情诊断": 288}},
    ),
    ("hoc_tsv", "HoC/test.tsv", "en", {"records": 3547, "documents": 371, "labels": {"none": 2650}}),
    (
        "pubmedqa",
        "PubMedQA/test_set.json",
        "en",
        {"records": 500, "documents": 500, "answers": {"maybe": 55, "no": 169, "yes": 276}},
    ),
]


def subset(stats: dict[str, object], expected: dict[str, object]) -> dict[str, object]:
    """The part of `stats` that `expected` names (dict values compared on the expected keys only)."""
    picked: dict[str, object] = {}
    for key, value in expected.items():
        found = stats[key]
        picked[key] = (
            {name: found.get(name) for name in value}
            if isinstance(value, dict) and isinstance(found, dict)
            else found
        )
    return picked


@pytest.mark.parametrize(("fmt", "relative", "language", "expected"), CASES, ids=[case[1] for case in CASES])
def test_stats_on_real_files(
    shared_data: Path, tmp_path: Path, fmt: str, relative: str, language: str, expected: dict[str, object]
) -> None:
    output = str(tmp_path / "records.jsonl")
    report = convert_file(fmt, str(shared_data / relative), output, "fail", Storage(), language=language)  # type: ignore[arg-type]
    assert report.rejects == 0
    stats = compute_stats(output)
    assert subset(stats, expected) == expected


def test_relation_and_answer_totals(shared_data: Path, tmp_path: Path) -> None:
    cmeie = str(tmp_path / "cmeie.jsonl")
    convert_file("cmeie", str(shared_data / "CMeIE/CMeIE-V2_dev.jsonl"), cmeie, "fail", Storage())
    stats = compute_stats(cmeie)
    assert (stats["records"], sum(stats["relations"].values())) == (
        3585,
        16309,
    )  # duplicates kept as in the source
    medqa = str(tmp_path / "mcmle.jsonl")
    convert_file(
        "medqa_jsonl", str(shared_data / "MedQA-MCMLE/test.jsonl"), medqa, "fail", Storage(), language="zh"
    )
    stats = compute_stats(medqa)
    assert (
        stats["records"] == 3426
        and sum(stats["answers"].values()) == 3426
        and set(stats["answers"]) == set("ABCDE")
    )
    assert "records   3426" in format_stats(stats)
