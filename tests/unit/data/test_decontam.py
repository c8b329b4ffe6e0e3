"""Decontamination: evaluation items never reach training, on the real files and on small cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.config.data import Catalogue, DataConfig, DatasetEntry
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.convert import iter_records
from taiyi_ray.data.decontam import EvalIndex, build_eval_index, normalise
from taiyi_ray.data.prepare import PrepareError, prepare_samples
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def eval_index(shared_data: Path) -> EvalIndex:
    return build_eval_index(load_catalogue(str(REPO / "configs" / "eval-13.yaml")), Storage())


def matches(index: EvalIndex, entry: DatasetEntry) -> tuple[int, int, list[Record]]:
    total, kept = 0, []
    for record in iter_records(entry, Storage()):
        assert isinstance(record, Record)
        total += 1
        if index.match(record) is None:
            kept.append(record)
    return total, total - len(kept), kept


def test_ori_pqal_loses_exactly_the_500_test_items(shared_data: Path, eval_index: EvalIndex) -> None:
    entry = DatasetEntry(
        name="pqal",
        format="pubmedqa",
        uri=str(shared_data / "PubMedQA/ori_pqal.json"),
        language="en",
        task="qa_yesno",
    )
    total, removed, kept = matches(eval_index, entry)
    assert (total, removed, len(kept)) == (1000, 500, 500)
    test_ids = set(json.loads((shared_data / "PubMedQA/test_ground_truth.json").read_text()))
    assert len(test_ids) == 500 and not {record.id for record in kept} & test_ids


def test_cdr_test_set_is_the_ner_test_too(shared_data: Path, eval_index: EvalIndex) -> None:
    # The PubTator test file as NER training data: every abstract is an evaluation document (by PMID).
    pubtator = DatasetEntry(
        name="cdr",
        format="pubtator_cdr",
        uri=str(shared_data / "BC5CDR-CDR/CDR_TestSet.PubTator.txt"),
        language="en",
        task="ner",
    )
    assert matches(eval_index, pubtator)[:2] == (500, 500)
    # The BIO conversion of the same test set has no PMIDs: its sentences are found inside the abstracts.
    bio = DatasetEntry(
        name="bio",
        format="bio_tsv",
        uri=str(shared_data / "BC5CDR-Chem/test.tsv"),
        language="en",
        task="ner",
        entity_types=["Chemical"],
    )
    total, removed, kept = matches(eval_index, bio)
    assert (total, removed) == (4797, 4755)
    # What is left cannot identify an abstract: list numbers and short fragments ("1 .", "The drug was given for
    # 4 weeks ."), a sentence two test abstracts share (so it is boilerplate), and one cut at every full stop.
    longer = sorted({record.text for record in kept if len(normalise(record.text)) >= 32})
    assert longer == [
        "ORR was 4 . 7 % ( 7 . 1 % stratum 1 ; 2 . 3 % stratum 2 ) .",
        "The clinical effects of heparin are meritorious , but side effects do exist .",
    ]


def test_train_files_lose_only_real_overlaps(shared_data: Path, eval_index: EvalIndex) -> None:
    train = DatasetEntry(
        name="hoc",
        format="hoc_tsv",
        uri=str(shared_data / "HoC/train.tsv"),
        language="en",
        task="tc_multilabel",
    )
    total, removed, _ = matches(eval_index, train)
    assert total == 12119 and removed <= 10  # only section headings shared with the test abstracts
    four_options = DatasetEntry(
        name="q",
        format="medqa_jsonl",
        uri=str(shared_data / "MedQA-USMLE/4_options_phrases_no_exclude_test.jsonl"),
        language="en",
        task="qa_mc",
    )
    assert matches(eval_index, four_options)[:2] == (1273, 1273)  # same questions, one option fewer


def record(**fields: object) -> Record:
    base = {"id": "r", "document_id": "r", "dataset": "d", "language": "en", "task": "tc", "labels": ["x"]}
    return Record.model_validate(base | fields)


def test_rules_on_small_records() -> None:
    index = EvalIndex()
    abstract = "Aspirin caused gastric ulcers in most of the treated rats. The effect was dose dependent in every group."
    index.add(record(id="1", document_id="123456", text=abstract), "EVAL")
    index.add(
        record(
            id="2",
            document_id="test.tsv:7",
            text="Which of the following is the most likely diagnosis? A rash.",
        ),
        "EVAL",
    )
    index.add(
        record(
            id="3",
            document_id="test.tsv:8",
            text="Which of the following is the most likely diagnosis? Fever.",
        ),
        "EVAL",
    )
    assert "PubMed id 123456" in (index.match(record(document_id="123456", text="other")) or "")
    assert (
        index.match(record(document_id="test.tsv:7", text="unrelated sentence here")) is None
    )  # local ids never compared
    assert "equals item 1 of EVAL" in (index.match(record(text=abstract.upper().replace(" ", "  "))) or "")
    tokenised = "Aspirin caused gastric ulcers in most of the treated rats ."
    assert "1 of its 1 sentences occur in EVAL" in (index.match(record(text=tokenised)) or "")
    assert (
        index.match(record(text="Which of the following is the most likely diagnosis? Headache.")) is None
    )  # boilerplate
    assert (
        index.match(
            record(
                text="Aspirin caused gastric ulcers in most of the treated rats. Ibuprofen did not cause any ulcers in the same experiment."
            )
        )
        is None
    )


def test_refuse_mode_stops_with_the_record_and_reason(tmp_path: Path) -> None:
    item = {
        "question": "Which vitamin is deficient in scurvy?",
        "options": {"A": "C", "B": "D"},
        "answer_idx": "A",
    }
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(item) + "\n")
    evaluation = tmp_path / "eval.yaml"
    evaluation.write_text(
        f"name: e\ndatasets:\n  - {{name: EVAL, format: medqa_jsonl, uri: {path}, language: en, task: qa_mc, metric: accuracy}}\n"
    )
    train = Catalogue(
        name="t",
        datasets=[
            DatasetEntry(
                name="train", format="medqa_jsonl", uri=str(path), language="en", task="qa_mc", stage=2
            )
        ],
    )
    refuse = DataConfig(catalogue="x.yaml", decontaminate_against=str(evaluation), decontamination="refuse")
    with pytest.raises(
        PrepareError,
        match=r"dataset train: record q.jsonl:1 is an evaluation item \(its text equals item q.jsonl:1 of EVAL\)",
    ):
        prepare_samples(train, refuse, Storage(), str(tmp_path / "out"))
    remove = refuse.model_copy(update={"decontamination": "remove"})
    result = prepare_samples(train, remove, Storage(), str(tmp_path / "out"))
    assert (result.totals.records, result.totals.decontaminated, result.totals.samples) == (1, 1, 0)
