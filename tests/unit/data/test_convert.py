"""`taiyi-ray data convert`: fail by default, quarantine on request, nothing dropped silently."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from taiyi_ray.cli import add_data_commands
from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.convert import ConvertError, convert_file, guess_split, iter_records, rejects_path_for
from taiyi_ray.data.formats import FORMATS, BadRecord
from taiyi_ray.storage import Storage


def main(argv: list[str]) -> int:
    """`taiyi-ray data ...` as the CLI wires it (the data subcommands only)."""
    parser = argparse.ArgumentParser(prog="taiyi-ray")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


BIO = "Aspirin\tB-Chemical\ncures\tO\n\nbad\tline\textra\n\nfever\tB-Disease\n\nworse\tO\tO\n\n"


def test_fail_mode_names_file_line_record_and_reason(write, tmp_path: Path) -> None:
    source = write("bio.tsv", BIO)
    output = tmp_path / "out.jsonl"
    with pytest.raises(ConvertError) as caught:
        convert_file("bio_tsv", source, str(output), "fail", Storage())
    message = str(caught.value)
    assert message.startswith(
        f"{source}:4 (record bio.tsv:2): expected 2 tab-separated columns (token, tag), got 3"
    )
    assert "--on-error quarantine" in message
    assert not output.exists()  # no half-written output


def test_quarantine_writes_each_reject_with_its_reason(write, tmp_path: Path) -> None:
    source = write("bio.tsv", BIO)
    output = tmp_path / "out.jsonl"
    report = convert_file(
        "bio_tsv", source, str(output), "quarantine", Storage(), dataset="demo", split="test"
    )
    assert (report.records, report.rejects) == (2, 2)
    assert report.rejects_path == str(tmp_path / "out.rejects.jsonl")
    rejects = [json.loads(line) for line in Path(report.rejects_path).read_text().splitlines()]
    assert [(item["line"], item["record_id"]) for item in rejects] == [(4, "bio.tsv:2"), (8, "bio.tsv:4")]
    assert rejects[0]["raw"] == "bad\tline\textra" and "got 3" in rejects[0]["reason"]
    kept = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(item["text"], item["dataset"], item["split"]) for item in kept] == [
        ("Aspirin cures", "demo", "test"),
        ("fever", "demo", "test"),
    ]


def test_clean_run_removes_stale_rejects(write, tmp_path: Path) -> None:
    output = tmp_path / "out.jsonl"
    convert_file("bio_tsv", write("bio.tsv", BIO), str(output), "quarantine", Storage())
    assert Path(rejects_path_for(str(output))).exists()
    report = convert_file("bio_tsv", write("good.tsv", "ok\tO\n"), str(output), "quarantine", Storage())
    assert report.rejects_path is None and not Path(rejects_path_for(str(output))).exists()


def test_cli_convert_and_stats(write, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write("bio.tsv", BIO)
    output = str(tmp_path / "cli.jsonl")
    assert main(["data", "convert", "--format", "bio_tsv", "--input", source, "--output", output]) == 1
    assert "expected 2 tab-separated columns" in capsys.readouterr().err
    assert (
        main(
            [
                "data",
                "convert",
                "--format",
                "bio_tsv",
                "--input",
                source,
                "--output",
                output,
                "--on-error",
                "quarantine",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (printed["records"], printed["rejects"]) == (2, 2)
    assert main(["data", "stats", output, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats == {
        "records": 2,
        "documents": 2,
        "entity_mentions": {"Chemical": 1, "Disease": 1},
        "relations": {},
        "events": {},
        "labels": {},
        "answers": {},
    }


def test_unknown_format_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="unknown format 'conll': expected one of") as caught:
        convert_file("conll", "x", str(tmp_path / "o.jsonl"), "fail", Storage())
    assert all(name in str(caught.value) for name in FORMATS)


@pytest.mark.parametrize(
    ("name", "split"),
    [("CDR_TestSet.PubTator.txt", "test"), ("CDR_DevelopmentSet.PubTator.txt", "dev"), ("devel.tsv", "dev"),
     ("KUAKE-QIC_train.json", "train"), ("CMeEE-V2_dev.json", "dev"), ("ori_pqal.json", "train")],
)  # fmt: skip
def test_guess_split(name: str, split: str) -> None:
    assert guess_split(f"/data/{name}") == split


def test_iter_records_checks_the_task_and_unified_records(write) -> None:
    entry = DatasetEntry(name="m", format="medqa_jsonl", uri=write("m.jsonl", ""), language="en", task="ner")
    with pytest.raises(ConvertError, match=r"format medqa_jsonl feeds tasks \['qa_mc'\], not 'ner'"):
        list(iter_records(entry, Storage()))
    record = {
        "id": "1",
        "document_id": "1",
        "dataset": "d",
        "language": "en",
        "task": "tc",
        "text": "x",
        "labels": ["a"],
    }
    unified = DatasetEntry(
        name="u", format="unified_jsonl", uri=write("u.jsonl", json.dumps(record)), language="en", task="ner"
    )
    (item,) = list(iter_records(unified, Storage()))
    assert (
        isinstance(item, BadRecord)
        and "record task 'tc' differs from the catalogue entry's task 'ner'" in item.reason
    )
