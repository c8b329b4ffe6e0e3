"""Every converter with a real file in ../shared/data, against the published counts (PROVENANCE.md).

The expected numbers are literals from the corpora's published statistics, not re-derived here.
"""

from __future__ import annotations

from collections import Counter

from taiyi_ray.data.answers import CMEEE_TYPES, HOC_NONE


def mention_counts(records) -> Counter[str]:
    return Counter(entity.type for record in records for entity in record.entities)


def test_bc5cdr_chem_bio_test(real_records) -> None:
    records = real_records("bio_tsv", "BC5CDR-Chem/test.tsv", "en", "ner", entity_types=["Chemical"])
    assert len(records) == 4797
    assert mention_counts(records) == {"Chemical": 5385}
    assert sum(len(record.text.split()) for record in records) == 124750  # tokens
    first = records[0]
    assert first.text.startswith(
        "Torsade de pointes ventricular tachycardia during low dose intermittent dobutamine"
    )
    assert [entity.text for entity in first.entities] == ["dobutamine"]
    assert first.document_id == first.id == "test.tsv:1"


def test_bc5cdr_dise_and_ncbi_bio_test(real_records) -> None:
    disease = real_records("bio_tsv", "BC5CDR-Dise/test.tsv", "en", "ner", entity_types=["Disease"])
    assert len(disease) == 4797
    assert mention_counts(disease) == {"Disease": 4424}
    assert disease[0].entities[0].text == "Torsade de pointes"
    ncbi = real_records("bio_tsv", "NCBI-Disease/test.tsv", "en", "ner", entity_types=["Disease"])
    assert len(ncbi) == 940
    assert mention_counts(ncbi) == {"Disease": 960}
    assert sum(len(record.text.split()) for record in ncbi) == 24497


def test_bc5cdr_pubtator_test(real_records) -> None:
    records = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "re")
    assert len(records) == 500
    assert mention_counts(records) == {"Chemical": 5385, "Disease": 4424}
    assert sum(len(record.relations) for record in records) == 1066
    assert {relation.type for record in records for relation in record.relations} == {"CID"}
    first = records[0]
    assert (first.id, first.document_id) == ("8701013", "8701013")
    assert first.text.startswith(
        "Famotidine-associated delirium. A series of six cases. Famotidine is a histamine"
    )
    assert first.entities[0].text == "Famotidine" and first.entities[0].normalized[0].key() == "MESH:D015738"
    assert first.relations[0].head_id == "MESH:D015738" and first.relations[0].tail_id == "MESH:D003693"


def test_pubtator_composite_mentions_count_once(real_records) -> None:
    records = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "re")
    composite = [entity for record in records for entity in record.entities if len(entity.normalized) > 1]
    # 75 mention lines carry several MeSH ids: 57 composite mentions (with an individual-mentions column) and
    # 18 abbreviations such as "RD" (C467567|D003907); each is one entity, so the totals stay 5,385 + 4,424.
    assert len(composite) == 75
    cystitis = next(entity for entity in composite if entity.text == "hemorrhagic cystitis")
    assert [concept.id for concept in cystitis.normalized] == ["D006470", "D003556"]
    bevacizumab = [entity for record in records for entity in record.entities if entity.text == "bevacizumab"]
    assert bevacizumab and all(
        entity.normalized == [] for entity in bevacizumab[:3]
    )  # MeSH id -1: no concept


def test_pubtator_ner_view_filters_types(real_records) -> None:
    chemicals = real_records(
        "pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "ner", entity_types=["Chemical"]
    )
    assert len(chemicals) == 500
    assert mention_counts(chemicals) == {"Chemical": 5385}
    assert all(record.task == "ner" and not record.relations for record in chemicals)


def test_bc5cdr_pubtator_train_and_dev(real_records) -> None:
    train = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_TrainingSet.PubTator.txt", "en", "re")
    dev = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_DevelopmentSet.PubTator.txt", "en", "re")
    assert (len(train), len(dev)) == (500, 500)
    assert mention_counts(train) == {"Chemical": 5203, "Disease": 4182}
    assert mention_counts(dev) == {"Chemical": 5347, "Disease": 4244}
    assert sum(len(record.relations) for record in train) == 1038
    assert sum(len(record.relations) for record in dev) == 1012


def test_cmeee_v2_dev(real_records) -> None:
    records = real_records("cmeee", "CMeEE/CMeEE-V2_dev.json", "zh", "ner")
    assert len(records) == 5000
    expected = {
        "bod": 7361,
        "dis": 6328,
        "sym": 5297,
        "pro": 3319,
        "dru": 1566,
        "ite": 1339,
        "mic": 621,
        "equ": 164,
        "dep": 86,
    }
    assert mention_counts(records) == expected
    assert sum(expected.values()) == 26081
    first = records[0]
    assert first.entities[0].text == "SARST细胞亚群" and first.entities[0].offsets == [
        (3, 12)
    ]  # end_idx 11 inclusive
    assert set(mention_counts(records)) == set(CMEEE_TYPES)


def test_cmeee_v1_dev_and_unlabelled_test(real_records) -> None:
    v1 = real_records("cmeee", "CMeEE/CMeEE_dev.json", "zh", "ner")
    assert len(v1) == 5000
    assert sum(mention_counts(v1).values()) == 20300
    unlabelled = real_records("cmeee", "CMeEE/CMeEE-V2_test_unlabeled.json", "zh", "ner", unlabelled=True)
    assert len(unlabelled) == 3000 and not any(record.entities for record in unlabelled)


def test_cmeie_v2_and_v1_dev(real_records) -> None:
    v2 = real_records("cmeie", "CMeIE/CMeIE-V2_dev.jsonl", "zh", "re")
    assert len(v2) == 3585
    assert sum(len(record.relations) for record in v2) == 16309
    relations = Counter(relation.type for record in v2 for relation in record.relations)
    assert relations["临床表现"] == 4153 and relations["相关（导致）"] == 1673
    first = v2[0]
    assert first.text.startswith("失眠症@引导意象和冥想")
    head = next(entity for entity in first.entities if entity.id == first.relations[0].head_id)
    assert (head.text, head.type, head.offsets) == ("失眠症", "疾病", [(0, 3)])  # first occurrence
    v1 = real_records("cmeie", "CMeIE/CMeIE_dev.jsonl", "zh", "re")
    assert len(v1) == 3585 and sum(len(record.relations) for record in v1) == 10626


def test_kuake_qic_dev(real_records) -> None:
    records = real_records("kuake_qic", "KUAKE-QIC/KUAKE-QIC_dev.json", "zh", "tc")
    assert len(records) == 1955
    labels = Counter(label for record in records for label in record.labels)
    assert labels == {
        "治疗方案": 676, "其他": 395, "病情诊断": 288, "疾病表述": 158, "就医建议": 134, "注意事项": 120,
        "医疗费用": 50, "后果表述": 45, "指标解读": 32, "病因分析": 29, "功效作用": 28,
    }  # fmt: skip
    assert (records[0].id, records[0].text, records[0].labels) == (
        "s1",
        "心肌缺血如何治疗与调养呢？",
        ["治疗方案"],
    )
    unlabelled = real_records(
        "kuake_qic", "KUAKE-QIC/KUAKE-QIC_test_unlabeled.json", "zh", "tc", unlabelled=True
    )
    assert len(unlabelled) == 1994 and not any(record.labels for record in unlabelled)


def test_hoc_test(real_records) -> None:
    records = real_records("hoc_tsv", "HoC/test.tsv", "en", "tc_multilabel")
    assert len(records) == 3547
    assert sum(record.labels == [HOC_NONE] for record in records) == 2650
    assert len({record.document_id for record in records}) == 371
    assert records[0].id == "12553062_s0" and records[0].document_id == "12553062"


def test_pubmedqa_test_and_pqal(real_records) -> None:
    records = real_records("pubmedqa", "PubMedQA/test_set.json", "en", "qa_yesno")
    assert len(records) == 500
    assert Counter(record.answer for record in records) == {"yes": 276, "no": 169, "maybe": 55}
    assert (
        records[0].id == "12377809"
        and records[0].question == "Is anorectal endosonography valuable in dyschesia?"
    )
    everything = real_records("pubmedqa", "PubMedQA/ori_pqal.json", "en", "qa_yesno")
    assert len(everything) == 1000
    assert {record.id for record in records} <= {record.id for record in everything}


def test_medqa_usmle_and_mcmle(real_records) -> None:
    usmle = real_records("medqa_jsonl", "MedQA-USMLE/test.jsonl", "en", "qa_mc")
    assert len(usmle) == 1273 and all(sorted(record.choices or {}) == list("ABCDE") for record in usmle)
    assert usmle[0].answer == "C"
    four = real_records("medqa_jsonl", "MedQA-USMLE/4_options_phrases_no_exclude_test.jsonl", "en", "qa_mc")
    assert len(four) == 1273 and all(sorted(record.choices or {}) == list("ABCD") for record in four)
    mcmle = real_records("medqa_jsonl", "MedQA-MCMLE/test.jsonl", "zh", "qa_mc")
    assert len(mcmle) == 3426
    assert (mcmle[0].answer, (mcmle[0].choices or {})["E"]) == ("E", "24小时内")
