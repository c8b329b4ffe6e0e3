"""A labelled file whose record lacks its label is refused (naming the record and field), not trained as an
empty answer; the explicit unlabelled mode (`--unlabelled`, `unlabelled: true`) reads test files without gold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.cli import main
from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.convert import ConvertError, convert_file, iter_records, read_records
from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

HOC_FLAGS = ",".join(f"{index}_{int(index == 3)}" for index in range(10))
# (format, file name, a file whose second item has no label, the missing item's id, the field named)
CASES = [
    (
        "hoc_tsv",
        "hoc.tsv",
        f"labels\tsentence\tindex\n{HOC_FLAGS}\tCells grow.\t111_s1\n\tCells die.\t111_s2\n",
        "111_s2",
        "labels",
    ),
    (
        "pubmedqa",
        "pqa.json",
        json.dumps(
            {
                "1": {"QUESTION": "Q1?", "CONTEXTS": ["c"], "final_decision": "yes"},
                "2": {"QUESTION": "Q2?", "CONTEXTS": ["c"]},
            }
        ),
        "2",
        "final_decision",
    ),
    (
        "medqa_jsonl",
        "medqa.jsonl",
        json.dumps({"question": "Q1", "options": {"A": "a", "B": "b"}, "answer_idx": "B"})
        + "\n"
        + json.dumps({"question": "Q2", "options": {"A": "a", "B": "b"}})
        + "\n",
        "medqa.jsonl:2",
        "answer_idx",
    ),
]


def source(path: Path, unlabelled: bool = False) -> Source:
    return Source(
        uri=str(path), dataset="t", split="test", language="en", storage=Storage(), unlabelled=unlabelled
    )


@pytest.mark.parametrize(("fmt", "name", "text", "record_id", "field"), CASES)
def test_a_labelled_file_refuses_a_record_without_its_label(
    tmp_path: Path, fmt: str, name: str, text: str, record_id: str, field: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    labelled, missing = FORMATS[fmt](source(path))
    assert isinstance(labelled, Record) and (labelled.labels or labelled.answer)
    assert isinstance(missing, BadRecord) and missing.record_id == record_id
    assert f"no label: field {field!r}" in missing.reason
    _, unlabelled = FORMATS[fmt](source(path, unlabelled=True))
    assert isinstance(unlabelled, Record) and unlabelled.id == record_id
    assert unlabelled.labels == [] and unlabelled.answer is None


def test_convert_fails_quarantines_or_reads_unlabelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fmt, name, text, record_id, _ = CASES[2]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    output = str(tmp_path / "out.jsonl")
    with pytest.raises(ConvertError, match=f"record {record_id}.*no label: field 'answer_idx'"):
        convert_file(fmt, str(path), output, "fail", Storage())
    assert not Path(output).exists()
    report = convert_file(fmt, str(path), output, "quarantine", Storage())
    assert (report.records, report.rejects) == (1, 1)
    rejected = json.loads(Path(str(report.rejects_path)).read_text(encoding="utf-8"))
    assert rejected["record_id"] == record_id and "answer_idx" in rejected["reason"]
    args = ["data", "convert", "--format", fmt, "--input", str(path), "--output", output]
    assert main(args) == 1
    assert "no label: field 'answer_idx'" in capsys.readouterr().err
    assert main([*args, "--unlabelled"]) == 0
    assert [record.answer for record in read_records(output)] == ["B", None]


def test_a_catalogue_entry_can_say_its_file_is_unlabelled(tmp_path: Path) -> None:
    fmt, name, text, _, _ = CASES[1]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    entry = {
        "name": "pqa",
        "format": fmt,
        "uri": str(path),
        "language": "en",
        "task": "qa_yesno",
        "split": "test",
    }
    labelled = list(iter_records(DatasetEntry.model_validate(entry), Storage()))
    assert [type(item) for item in labelled] == [Record, BadRecord]
    unlabelled = list(iter_records(DatasetEntry.model_validate({**entry, "unlabelled": True}), Storage()))
    assert [item.answer for item in unlabelled if isinstance(item, Record)] == ["yes", None]
