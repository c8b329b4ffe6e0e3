"""parse(serialise(gold)) == gold on every record of the real files (and the prediction as a record)."""

from __future__ import annotations

import pytest

from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.answers import answer_space, gold_prediction, parse_with, prediction_to_record, serialise

SETS = [
    ("bio_tsv", "BC5CDR-Chem/test.tsv", "en", "ner", {"entity_types": ["Chemical"]}),
    ("bio_tsv", "NCBI-Disease/test.tsv", "en", "ner", {"entity_types": ["Disease"]}),
    ("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "ner", {}),
    ("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "re", {}),
    ("pubtator_cdr", "BC5CDR-CDR/CDR_TrainingSet.PubTator.txt", "en", "re", {}),
    ("cmeee", "CMeEE/CMeEE-V2_dev.json", "zh", "ner", {}),
    ("cmeee", "CMeEE/CMeEE_dev.json", "zh", "ner", {}),
    ("cmeie", "CMeIE/CMeIE-V2_dev.jsonl", "zh", "re", {}),
    ("cmeie", "CMeIE/CMeIE_dev.jsonl", "zh", "re", {}),
    ("kuake_qic", "KUAKE-QIC/KUAKE-QIC_dev.json", "zh", "tc", {}),
    ("hoc_tsv", "HoC/test.tsv", "en", "tc_multilabel", {}),
    ("pubmedqa", "PubMedQA/test_set.json", "en", "qa_yesno", {}),
    ("medqa_jsonl", "MedQA-USMLE/test.jsonl", "en", "qa_mc", {}),
    ("medqa_jsonl", "MedQA-MCMLE/test.jsonl", "zh", "qa_mc", {}),
]


@pytest.mark.parametrize(
    ("fmt", "relative", "language", "task", "extra"), SETS, ids=[f"{case[1]}-{case[3]}" for case in SETS]
)
def test_round_trip_on_every_real_record(
    real_records, shared_data, fmt, relative, language, task, extra
) -> None:
    records = real_records(fmt, relative, language, task, **extra)
    entry = DatasetEntry(
        name="set", format=fmt, uri=str(shared_data / relative), language=language, task=task, **extra
    )
    failures = []
    items = 0
    for record in records:
        space = answer_space(record, entry)
        gold = gold_prediction(record, space)
        items += len(gold.entities) + len(gold.relations) + len(gold.labels) + (gold.answer is not None)
        text = serialise(gold, space)
        result = parse_with(text, space)
        if (
            not result.ok
            or result.prediction != gold
            or gold_prediction(prediction_to_record(result.prediction, record), space) != gold
        ):
            failures.append((record.id, text[:200]))
    assert not failures, f"{len(failures)} of {len(records)} records do not round-trip, e.g. {failures[:3]}"
    assert items > 0


def test_cid_gold_names_concepts_by_their_first_single_concept_mention(real_records) -> None:
    records = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "re")
    entry = DatasetEntry(name="cid", format="pubtator_cdr", uri="x", language="en", task="re")
    first = records[0]
    assert serialise(gold_prediction(first, answer_space(first, entry)), answer_space(first, entry)) == (
        "chemical-induced disease: [Famotidine, delirium]"
    )
    pairs = sum(len(gold_prediction(record, answer_space(record, entry)).relations) for record in records)
    # 1,066 concept pairs, 1,056 distinct text pairs: in 10 a composite mention ("hemorrhagic cystitis",
    # D006470|D003556) is the only mention of both concepts, so one text pair stands for two concept pairs.
    assert pairs == 1056
