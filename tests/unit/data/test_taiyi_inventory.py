"""configs/catalogues/taiyi-140.yaml: Taiyi's 140 datasets, row for row, each read by a known converter or null."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import yaml

from taiyi_ray.config.data import Inventory
from taiyi_ray.data.formats import FORMAT_TASKS, FORMATS

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "configs" / "catalogues" / "taiyi-140.yaml"
TSV = Path(os.environ.get("TAIYI_SHARED", ROOT.parent / "shared")) / "reference" / "taiyi-datasets.tsv"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return Inventory.model_validate(yaml.safe_load(INVENTORY.read_text(encoding="utf-8")))


def test_the_inventory_holds_140_entries_keyed_by_language_and_number(inventory: Inventory) -> None:
    assert inventory.name == "taiyi-140"
    assert len(inventory.datasets) == 140
    keys = [(entry.language, entry.number) for entry in inventory.datasets]
    assert sorted(keys) == sorted([("zh", n) for n in range(1, 39)] + [("en", n) for n in range(1, 103)])


def test_every_entry_restates_its_taiyi_row(inventory: Inventory) -> None:
    if not TSV.is_file():
        pytest.skip(f"{TSV} not present: the row-for-row check needs ../shared/reference")
    with TSV.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    expected = [
        (
            row["lang"],
            int(row["num"]),
            row["dataset"],
            row["sizes"],
            row["url"],
            row["task"],
            row["task_family"],
        )
        for row in rows
    ]
    found = [
        (e.language, e.number, e.name, e.sizes, e.obtain, e.taiyi_task, e.family) for e in inventory.datasets
    ]
    assert found == expected
    samples = [int(row["instruction_samples"]) if row["instruction_samples"] else None for row in rows]
    assert [entry.instruction_samples for entry in inventory.datasets] == samples


def test_every_format_is_a_converter_and_feeds_the_entry_task(inventory: Inventory) -> None:
    unknown = {e.format for e in inventory.datasets if e.format} - set(FORMATS)
    assert not unknown, f"formats that are no registered converter: {sorted(unknown)}"
    for entry in inventory.datasets:
        if entry.format in FORMATS:
            assert entry.task in FORMAT_TASKS[entry.format], (entry.name, entry.format, entry.task)
        if entry.format is None:
            assert entry.note, f"{entry.name}: a dataset no converter reads must say what it would need"


def test_stage_follows_taiyi_recipe(inventory: Inventory) -> None:
    for entry in inventory.datasets:
        second = entry.task in ("qa_yesno", "qa_mc", "qa_open", "dialogue")
        assert entry.stage == (2 if second else 1), (entry.name, entry.task, entry.stage)
