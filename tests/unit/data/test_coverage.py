"""`taiyi-ray data coverage`: computed from the inventory and the registries, never declared by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taiyi_ray.cli import main
from taiyi_ray.config.data import Inventory
from taiyi_ray.config.loader import ConfigError
from taiyi_ray.data.catalogue import coverage, load_inventory, missing_piece
from taiyi_ray.eval.scoring import SCORE_TASK_OF

BASE = {"taiyi_task": "NER", "family": "ner", "stage": 1, "licence": "test", "obtain": "https://example.org"}


def entry(language: str, number: int, name: str, **fields: object) -> dict[str, object]:
    return {**BASE, "language": language, "number": number, "name": name, **fields}


ENTRIES = [
    entry("en", 1, "ncbi", task="ner", format="bio_tsv"),
    entry("en", 2, "cdr", task="re", format="pubtator_cdr", family="re"),
    entry("en", 3, "unread", task="ner", format=None, note="ships as BRAT"),
    entry("en", 4, "wrong task", task="qa_mc", format="bio_tsv", family="qa_mc"),
    entry("zh", 1, "ncbi", task="dialogue", format="sharegpt_jsonl", family="dialogue"),
    entry("zh", 2, "unknown", task="tc", format="no_such_format", family="tc"),
]


def write_inventory(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "datasets": entries}, allow_unicode=True), encoding="utf-8")
    return path


def test_coverage_counts_only_datasets_every_stage_can_take(tmp_path: Path) -> None:
    report = coverage(load_inventory(str(write_inventory(tmp_path, ENTRIES))), SCORE_TASK_OF)
    assert (report.datasets, report.covered) == (6, 3)
    assert {family: (c.datasets, c.covered) for family, c in report.by_family.items()} == {
        "dialogue": (1, 1),
        "ner": (2, 1),
        "qa_mc": (1, 0),
        "re": (1, 1),
        "tc": (1, 0),
    }
    reasons = {missing.name: missing.reason for missing in report.uncovered}
    assert reasons == {
        "unread": "no converter reads its distribution (ships as BRAT)",
        "wrong task": "format bio_tsv feeds tasks ['ner'], not 'qa_mc'",
        "unknown": "format 'no_such_format' is not a registered converter",
    }


def test_the_json_line_is_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "coverage", "--catalogue", str(write_inventory(tmp_path, ENTRIES)), "--json"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["datasets"] == 6 and last["covered"] == 3
    assert last["by_family"]["ner"] == {"datasets": 2, "covered": 1}
    assert set(last) == {"datasets", "covered", "by_family"}


def test_a_task_without_a_scorer_or_parser_is_not_covered(monkeypatch: pytest.MonkeyPatch) -> None:
    from taiyi_ray.data import catalogue

    inventory = Inventory.model_validate(
        {"name": "t", "datasets": [entry("en", 1, "x", task="ner", format="bio_tsv")]}
    )
    (ner,) = inventory.datasets
    assert missing_piece(ner, SCORE_TASK_OF) is None
    assert missing_piece(ner, {"re"}) == "task 'ner' has no scorer"
    monkeypatch.setattr(catalogue, "PARSED_TASKS", ("re",))
    assert missing_piece(ner, SCORE_TASK_OF) == "task 'ner' has no answer parser"


def test_keys_are_language_and_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    twice = [
        entry("en", 1, "a", task="ner", format="bio_tsv"),
        entry("en", 1, "b", task="ner", format="bio_tsv"),
    ]
    path = write_inventory(tmp_path, twice)
    with pytest.raises(ConfigError, match=r"\(en, 1\) appears twice"):
        load_inventory(str(path))
    assert main(["data", "coverage", "--catalogue", str(path)]) == 2
    assert "appears twice" in capsys.readouterr().err


def test_a_bigbio_loader_is_read_by_its_schema_converter() -> None:
    loader = {"dataset": "ncbi_disease", "config": "ncbi_disease_bigbio_kb"}
    with pytest.raises(ValueError, match="read by format bigbio_<schema>"):
        Inventory.model_validate(
            {"name": "t", "datasets": [entry("en", 1, "x", task="ner", format="bio_tsv", bigbio=loader)]}
        )


def test_every_task_has_prompts_a_parser_and_a_scorer() -> None:
    from typing import get_args

    from taiyi_ray.config.data import Task
    from taiyi_ray.data.answers import PARSED_TASKS
    from taiyi_ray.data.catalogue import has_prompts

    for task in get_args(Task):
        assert has_prompts(task) and task in PARSED_TASKS and task in SCORE_TASK_OF, task
