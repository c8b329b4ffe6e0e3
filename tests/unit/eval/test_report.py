"""The report's format: results.json keys, the report.md table and averages, scores.png, summary.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.eval.baselines import Baselines, ReferenceScores, load_reference
from taiyi_ray.eval.finalise import SetResult, Timing
from taiyi_ray.eval.report import RunInfo, report_markdown, summarise, write_report
from taiyi_ray.storage import Storage

COLUMNS = ("Taiyi", "ChatGPT-3.5", "SOTA (discriminative)", "Taiyi-2")
REFERENCE = ReferenceScores(
    columns=COLUMNS,
    by_set={
        "A": dict(zip(COLUMNS, (80.0, 60.0, 90.0, 85.0), strict=True)),
        "B": dict(zip(COLUMNS, (40.0, 20.0, 50.0, 45.0), strict=True)),
        "C": dict(zip(COLUMNS, (70.0, 70.0, 70.0, 70.0), strict=True)),
        "D": dict(zip(COLUMNS, (10.0, 10.0, 10.0, 10.0), strict=True)),
    },
    eval_units={},
    published_average=dict(zip(COLUMNS, (50.0, 40.0, 55.0, 52.5), strict=True)),
)
RESULTS = [
    SetResult("A", "ner", "micro_f1", 50.0, 10, 2, False, timing=Timing(10, 0, 2.0, 80),
              false_positives=[("Chemical: x", 3)], false_negatives=[("Chemical: y", 1)],
              unparsed_examples=["garbage"]),
    SetResult("B", "qa_mc", "accuracy", 30.0, 20, 0, False, timing=Timing(0, 20, 0.0, 0)),
    SetResult("C", "ner", "micro_f1", None, 0, 0, True),
    SetResult("E", "tc", "micro_f1", 90.0, 5, 0, False, baselines=Baselines(40.0, 9.09)),
]  # fmt: skip
INFO = RunInfo(answers="model M", catalogue="cat", limit=None, generation="greedy", wall_s=1.5)


def test_averages_cover_only_sets_scored_on_both_sides() -> None:
    summary = summarise(RESULTS, REFERENCE).model_dump()
    assert summary["average"] == pytest.approx((50 + 30 + 90) / 3)
    assert summary["sets_compared"] == ["A", "B"]  # C is missing, D not run, E not in the paper
    assert summary["average_compared"] == {
        "ours": 40.0, "Taiyi": 60.0, "ChatGPT-3.5": 40.0, "SOTA (discriminative)": 70.0,
    }  # fmt: skip


def test_report_table_rows_averages_and_notes() -> None:
    text = report_markdown(RESULTS, REFERENCE, INFO)
    header = "| Set | Task | Metric | Ours | Majority | Random | Taiyi | ChatGPT-3.5 | SOTA | n | unparsed |"
    assert header in text
    assert "| A | ner | micro_f1 | 50.0 | – | – | 80.0 | 60.0 | 90.0 | 10 | 2 |" in text
    assert "| C | ner | micro_f1 | missing | – | – | 70.0 | 70.0 | 70.0 | – | – |" in text
    assert "| E | tc | micro_f1 | 90.0 | 40.0 | 9.1 | – | – | – | 5 | 0 |" in text
    assert "| **Average over the 2 sets on both sides** | | | 40.0 | | | 60.0 | 40.0 | 70.0 | | |" in text
    assert "| Published average (4 sets) | | | – | | | 50.0 | 40.0 | 55.0 | | |" in text
    assert "Missing (file absent, not scored): C." in text
    assert "Not evaluated in this run (not in its catalogue): D." in text
    assert "| A | 10 | 0 | 5.00 | 80 |" in text  # speed: 10 generated in 2 s
    assert "- false positives: `Chemical: x` ×3" in text and "unparsed (2), e.g.: 'garbage'" in text


def test_limited_run_says_scores_are_not_comparable() -> None:
    limited = RunInfo(answers="m", catalogue="c", limit=8, generation="g")
    assert "at most the first 8 items of each set: not comparable" in report_markdown(RESULTS, None, limited)


def test_write_report_files(tmp_path: Path) -> None:
    summary = write_report(Storage(), str(tmp_path), RESULTS, REFERENCE, INFO).model_dump(mode="json")
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["A", "B", "C", "E"]
    assert list(results["A"])[:5] == ["metric", "score", "n", "unparsed", "missing"]
    assert results["C"]["missing"] is True and results["C"]["score"] is None
    assert (tmp_path / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["missing"] == ["C"] and summary["items"] == 35 and summary["unparsed"] == 2


def test_load_reference_reads_the_paper_file(shared_dir: Path) -> None:
    reference = load_reference(Storage(), str(shared_dir / "reference" / "paper-scores.json"))
    assert len(reference.by_set) == 13
    assert reference.by_set["BC5CDR-CID"]["Taiyi"] == 37.5
    assert reference.published_average["ChatGPT-3.5"] == 49.3


def test_load_reference_names_a_malformed_field(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"columns": ["Taiyi"], "sets": [{"name": "A", "scores": [1, 2]}]}))
    with pytest.raises(ValueError, match=r"sets\[0\].scores has 2 values, expected 1"):
        load_reference(Storage(), str(path))
