"""Catalogues: the shipped ones validate and say what they should; bad ones fail with file, line, field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.config.loader import ConfigError
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.formats import FORMATS

REPO = Path(__file__).resolve().parents[3]
# taiyi-140.yaml is an Inventory (datasets to account for, not to train on): test_taiyi_inventory.py checks it.
INVENTORIES = {"taiyi-140.yaml"}
CATALOGUES = [
    *sorted(
        path for path in (REPO / "configs" / "catalogues").glob("*.yaml") if path.name not in INVENTORIES
    ),
    REPO / "configs" / "eval-13.yaml",
]
QA_TASKS = {"qa_yesno", "qa_mc", "qa_open", "dialogue"}


@pytest.mark.parametrize("path", CATALOGUES, ids=[path.name for path in CATALOGUES])
def test_shipped_catalogues_validate(path: Path) -> None:
    catalogue = load_catalogue(str(path))
    assert catalogue.datasets and all(entry.format in FORMATS for entry in catalogue.datasets)


def test_demo_catalogues_use_the_packaged_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(
        REPO
    )  # relative paths resolve against the working directory, as jobs run from the repo root
    train = load_catalogue("configs/catalogues/demo.yaml")
    evaluation = load_catalogue("configs/catalogues/demo-eval.yaml")
    for entry in [*train.datasets, *evaluation.datasets]:
        assert Path(entry.uri).is_file(), entry.uri
        assert "/taiyi_ray/data/demo_corpus/" in entry.uri
    assert {entry.stage for entry in train.datasets if entry.task in QA_TASKS} == {2}
    assert {entry.stage for entry in train.datasets if entry.task not in QA_TASKS} == {1}
    assert all(entry.metric and entry.split == "test" for entry in evaluation.datasets)
    assert not {entry.uri for entry in train.datasets} & {entry.uri for entry in evaluation.datasets}


def test_eval_13_matches_the_paper_sets(shared_dir: Path, shared_data: Path) -> None:
    paper = json.loads((shared_dir / "reference" / "paper-scores.json").read_text())["sets"]
    catalogue = load_catalogue(str(REPO / "configs" / "eval-13.yaml"))
    entries = {entry.name: entry for entry in catalogue.datasets}
    assert list(entries) == [item["name"] for item in paper]
    for item in paper:
        entry = entries[item["name"]]
        assert (entry.language, entry.metric) == (item["lang"], item["metric"]), item["name"]
        assert entry.task == item["task"], item["name"]
        assert entry.eval_unit and entry.uri.startswith(str(shared_data))
    missing = sorted(name for name, entry in entries.items() if not Path(entry.uri).exists())
    assert missing == ["BC7-LitCovid", "CHEMDNER"]
    assert entries["BC5CDR-Chem"].entity_types == ["Chemical"] and entries["BC5CDR-Dise"].entity_types == [
        "Disease"
    ]
    assert (
        entries["BC5CDR-Chem"].uri == entries["BC5CDR-Dise"].uri == entries["BC5CDR-CID"].uri
    )  # one PubTator test file
    assert entries["MedQA-USMLE"].uri.endswith("MedQA-USMLE/test.jsonl")  # the 5-option file


def test_shared_train_lists_existing_training_files_only(shared_data: Path) -> None:
    train = load_catalogue(str(REPO / "configs" / "catalogues" / "shared-train.yaml"))
    evaluation = load_catalogue(str(REPO / "configs" / "eval-13.yaml"))
    assert all(Path(entry.uri).is_file() for entry in train.datasets)
    assert not {entry.uri for entry in train.datasets} & {entry.uri for entry in evaluation.datasets}
    assert {entry.stage for entry in train.datasets if entry.task in QA_TASKS} == {2}
    assert {entry.stage for entry in train.datasets if entry.task not in QA_TASKS} == {1}


def write_catalogue(tmp_path: Path, entry: str) -> str:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        f"name: test\ndatasets:\n  - name: ok\n    format: cmeee\n    uri: x.json\n    language: zh\n    task: ner\n{entry}"
    )
    return str(path)


def test_unknown_format_names_file_line_field_and_known_formats(tmp_path: Path) -> None:
    path = write_catalogue(
        tmp_path, "  - name: bad\n    format: conll2003\n    uri: y.tsv\n    language: en\n    task: ner\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_catalogue(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}:9: datasets.1.format (bad): unknown format 'conll2003': expected one of"
    )
    assert all(name in message for name in FORMATS)


def test_task_vocabulary_and_schema_errors(tmp_path: Path) -> None:
    bio = "  - name: bio\n    format: bio_tsv\n    uri: y.tsv\n    language: en\n    task: ner\n"
    with pytest.raises(
        ConfigError,
        match=r":8: datasets.1.entity_types \(bio\): a bio_tsv NER entry must list its entity types",
    ):
        load_catalogue(write_catalogue(tmp_path, bio))
    wrong_task = "  - name: qa\n    format: medqa_jsonl\n    uri: y.jsonl\n    language: en\n    task: tc\n"
    with pytest.raises(
        ConfigError,
        match=r":12: datasets.1.task \(qa\): format medqa_jsonl feeds tasks \['qa_mc'\], got 'tc'",
    ):
        load_catalogue(write_catalogue(tmp_path, wrong_task))
    wrong_types = "  - name: cdr\n    format: pubtator_cdr\n    uri: y\n    language: en\n    task: ner\n    entity_types: [Gene]\n"
    with pytest.raises(
        ConfigError, match=r"types \['Gene'\] are not pubtator_cdr types \['Chemical', 'Disease'\]"
    ):
        load_catalogue(write_catalogue(tmp_path, wrong_types))
    events_on_ner = wrong_types.replace("entity_types: [Gene]", "event_types: [Binding]")
    with pytest.raises(
        ConfigError, match=r"event_types \(cdr\): only EE entries take event_types, this one is 'ner'"
    ):
        load_catalogue(write_catalogue(tmp_path, events_on_ner))
    ee = "  - name: ge\n    format: unified_jsonl\n    uri: y\n    language: en\n    task: ee\n    event_types: [Binding]\n"
    assert load_catalogue(write_catalogue(tmp_path, ee)).datasets[1].event_types == ["Binding"]
    no_uri = "  - name: nouri\n    format: cmeee\n    language: zh\n    task: ner\n    stage: 3\n"
    with pytest.raises(ConfigError) as caught:
        load_catalogue(write_catalogue(tmp_path, no_uri))
    assert ":8: datasets.1.uri: Field required" in str(caught.value)
    assert ":12: datasets.1.stage: Input should be 1 or 2 (got 3)" in str(caught.value)


def test_environment_default_is_overridable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAIYI_SHARED_DATA", str(tmp_path / "elsewhere"))
    catalogue = load_catalogue(str(REPO / "configs" / "eval-13.yaml"))
    assert all(entry.uri.startswith(str(tmp_path / "elsewhere")) for entry in catalogue.datasets)
