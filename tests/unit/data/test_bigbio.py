"""BigBIO-schema converters: files written here in BigBIO's layout from the real files of ../shared/data
give the same records as the native converters; spec-written small files for the other schemas.

The BigBIO files are written the way the BigBIO loaders write them (bigscience-workshop/biomedical
`bigbio/hub/hub_repos/{bc5cdr,pubmed_qa,med_qa,hallmarks_of_cancer}`): BC5CDR passages title and
abstract with document-level offsets and CID materialised mention by mention, PubMedQA's contexts
joined by spaces with choices yes/no/maybe, MedQA's option texts as choices and the answer text.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taiyi_ray.cli import main
from taiyi_ray.config.data import DatasetEntry, Language, Task
from taiyi_ray.data.convert import iter_records
from taiyi_ray.data.formats import FORMATS, BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

CDR_DOCUMENTS = 80
QA_ITEMS = 150
HOC_ROWS = 400

_SPAN = pa.list_(pa.list_(pa.int32()))
_TEXTS = pa.list_(pa.string())
_LINKS = pa.list_(pa.struct([("db_name", pa.string()), ("db_id", pa.string())]))
KB_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("document_id", pa.string()),
        ("passages", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("text", _TEXTS), ("offsets", _SPAN)]))),
        ("entities", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("text", _TEXTS), ("offsets", _SPAN), ("normalized", _LINKS)]))),
        ("events", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("trigger", pa.struct([("text", _TEXTS), ("offsets", _SPAN)])), ("arguments", pa.list_(pa.struct([("role", pa.string()), ("ref_id", pa.string())])))]))),
        ("coreferences", pa.list_(pa.struct([("id", pa.string()), ("entity_ids", _TEXTS)]))),
        ("relations", pa.list_(pa.struct([("id", pa.string()), ("type", pa.string()), ("arg1_id", pa.string()), ("arg2_id", pa.string()), ("normalized", _LINKS)]))),
    ]
)  # fmt: skip
"""The kb features of `bigbio/utils/schemas/kb.py` as the `datasets` library writes them to Parquet."""


def convert(
    fmt: str, path: str | Path, *, unlabelled: bool = False, task: Task | None = None, **options: Any
) -> list[Record | BadRecord]:
    language: Language = "en"
    source = Source(
        uri=str(path),
        dataset="t",
        split="test",
        language=language,
        storage=Storage(),
        options=options,
        unlabelled=unlabelled,
        task=task,
    )
    return list(FORMATS[fmt](source))


def good(items: list[Record | BadRecord]) -> list[Record]:
    rejected = [item.describe() for item in items if isinstance(item, BadRecord)]
    assert not rejected, rejected
    return [item for item in items if isinstance(item, Record)]


def only_bad(items: list[Record | BadRecord]) -> BadRecord:
    (item,) = [item for item in items if isinstance(item, BadRecord)]
    return item


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def head_blocks(path: Path, count: int) -> str:
    """The first `count` blank-line-separated documents of a PubTator file."""
    blocks = path.read_text(encoding="utf-8").split("\n\n")[:count]
    return "\n\n".join(blocks) + "\n\n"


# -- BC5CDR: PubTator -> BigBIO kb (JSONL and Parquet) ------------------------------------------------


def bigbio_kb_documents(pubtator: str, native: list[Record]) -> list[dict[str, Any]]:
    titles = {}
    for line in pubtator.splitlines():
        pmid, _, rest = line.partition("|t|")
        if rest or line.endswith("|t|"):
            titles[pmid] = rest
    return [bigbio_kb_document(record, titles[record.id]) for record in native]


def bigbio_kb_document(record: Record, title: str) -> dict[str, Any]:
    """A document as BigBIO's bc5cdr loader writes it (ids prefixed with the PMID to be unique)."""
    pmid = record.id
    abstract = record.text[len(title) + 1 :]
    entities = [
        {
            "id": f"{pmid}-{entity.id}",
            "type": entity.type,
            "text": [entity.text],
            "offsets": [list(span) for span in entity.offsets or []],
            "normalized": [{"db_name": link.db, "db_id": link.id} for link in entity.normalized],
        }
        for entity in record.entities
    ]
    mentions: dict[str, list[str]] = {}
    for entity in record.entities:
        for link in entity.normalized:
            mentions.setdefault(link.key(), []).append(f"{pmid}-{entity.id}")
    relations = [
        {"id": f"{pmid}-R{n}", "type": relation.type, "arg1_id": head, "arg2_id": tail, "normalized": []}
        for n, relation in enumerate(record.relations)
        for head in mentions[relation.head_id]
        for tail in mentions[relation.tail_id]
    ]
    passages = [
        {"id": f"{pmid}-title", "type": "title", "text": [title], "offsets": [[0, len(title)]]},
        {"id": f"{pmid}-abstract", "type": "abstract", "text": [abstract], "offsets": [[len(title) + 1, len(record.text)]]},
    ]  # fmt: skip
    return {
        "id": pmid,
        "document_id": pmid,
        "passages": passages,
        "entities": entities,
        "events": [],
        "coreferences": [],
        "relations": relations,
    }


@pytest.fixture(scope="module")
def cdr(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A slice of the BC5CDR test set: native records, and the same documents as BigBIO JSONL and Parquet."""
    folder = tmp_path_factory.mktemp("cdr")
    pubtator = head_blocks(shared_data / "BC5CDR-CDR" / "CDR_TestSet.PubTator.txt", CDR_DOCUMENTS)
    (folder / "cdr.PubTator.txt").write_text(pubtator, encoding="utf-8")
    native = good(convert("pubtator_cdr", folder / "cdr.PubTator.txt"))
    documents = bigbio_kb_documents(pubtator, native)
    jsonl = write_jsonl(folder / "bc5cdr_bigbio_kb.jsonl", documents)
    parquet = folder / "bc5cdr_bigbio_kb.data"  # no .parquet suffix: recognised by its magic bytes
    pq.write_table(pa.Table.from_pylist(documents, schema=KB_SCHEMA), parquet, row_group_size=16)
    return {"native": native, "jsonl": jsonl, "parquet": parquet}


def test_bc5cdr_kb_jsonl_matches_pubtator(cdr: dict[str, Any]) -> None:
    native: list[Record] = cdr["native"]
    records = good(convert("bigbio_kb", cdr["jsonl"]))
    assert len(records) == len(native) == CDR_DOCUMENTS
    assert [record.text for record in records] == [record.text for record in native]
    assert (
        sum(len(record.entities) for record in records)
        == sum(len(record.entities) for record in native)
        == 1581
    )
    for ours, theirs in zip(records, native, strict=True):
        assert [(e.type, e.text, e.offsets, e.normalized) for e in ours.entities] == [
            (e.type, e.text, e.offsets, e.normalized) for e in theirs.entities
        ]
    # BigBIO materialises each CID concept pair over every chemical x disease mention of the two concepts.
    assert sum(len(record.relations) for record in native) == 176
    assert sum(len(record.relations) for record in records) == 2737
    for ours, theirs in zip(records, native, strict=True):
        stated = {(relation.head_id, relation.tail_id) for relation in theirs.relations}
        assert concept_pairs(ours, stated) == stated
        assert ours.task == ("re" if theirs.relations else "ner")
    first = records[0]
    assert (first.id, first.document_id) == ("8701013", "8701013")
    assert first.relations[0].head_id.startswith("8701013-T") and first.relations[0].type == "CID"


def concept_pairs(record: Record, stated: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The concept pairs of `stated` that a record's mention-level relations express, each relation at least one.

    A composite mention ("hemorrhagic cystitis", two MeSH ids) stands for either of its concepts.
    """
    concepts = {entity.id: [link.key() for link in entity.normalized] for entity in record.entities}
    found: set[tuple[str, str]] = set()
    for relation in record.relations:
        pairs = {(h, t) for h in concepts[relation.head_id] for t in concepts[relation.tail_id]} & stated
        assert pairs, f"relation {relation} states no CID pair of {record.id}"
        found |= pairs
    return found


def test_bc5cdr_kb_parquet_equals_jsonl(cdr: dict[str, Any]) -> None:
    from_parquet = good(convert("bigbio_kb", cdr["parquet"]))
    from_jsonl = good(convert("bigbio_kb", cdr["jsonl"]))
    assert pq.ParquetFile(cdr["parquet"]).num_row_groups == 5  # 80 rows in groups of 16: read batch by batch
    assert [record.model_dump() for record in from_parquet] == [record.model_dump() for record in from_jsonl]


# -- PubMedQA, MedQA, HoC -> BigBIO qa / text ------------------------------------------------------


def test_pubmedqa_as_bigbio_qa_yesno(shared_data: Path, tmp_path: Path) -> None:
    source = json.loads((shared_data / "PubMedQA" / "ori_pqal.json").read_text(encoding="utf-8"))
    subset = dict(list(source.items())[:QA_ITEMS])
    (tmp_path / "pqal.json").write_text(json.dumps(subset), encoding="utf-8")
    native = good(convert("pubmedqa", tmp_path / "pqal.json"))
    items = [
        {
            "id": pmid, "question_id": pmid, "document_id": pmid, "question": row["QUESTION"], "type": "yesno",
            "choices": ["yes", "no", "maybe"], "context": " ".join(row["CONTEXTS"]), "answer": [row["final_decision"]],
        }
        for pmid, row in subset.items()
    ]  # fmt: skip
    records = good(convert("bigbio_qa", write_jsonl(tmp_path / "pubmed_qa_bigbio_qa.jsonl", items)))
    assert len(records) == len(native) == QA_ITEMS
    assert {record.task for record in records} == {"qa_yesno"}
    assert [(r.id, r.question, r.answer) for r in records] == [(r.id, r.question, r.answer) for r in native]
    assert Counter(record.answer for record in records) == Counter({"yes": 86, "no": 35, "maybe": 29})


def test_medqa_as_bigbio_qa_multiple_choice(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "MedQA-USMLE" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:QA_ITEMS]
    (tmp_path / "medqa.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    native = good(convert("medqa_jsonl", tmp_path / "medqa.jsonl"))
    rows = [json.loads(line) for line in lines]
    items = [
        {
            "id": str(n), "question_id": str(n), "document_id": str(n), "question": row["question"],
            "type": "multiple_choice", "choices": list(row["options"].values()), "context": "", "answer": [row["answer"]],
        }
        for n, row in enumerate(rows)
    ]  # fmt: skip
    records = good(convert("bigbio_qa", write_jsonl(tmp_path / "med_qa_en_bigbio_qa.jsonl", items)))
    assert len(records) == len(native) == QA_ITEMS
    assert [(r.answer, r.choices) for r in records] == [(r.answer, r.choices) for r in native]
    assert Counter(record.answer for record in records) == Counter(
        {"A": 32, "B": 28, "C": 31, "D": 34, "E": 25}
    )
    assert records[0].context is None and records[0].task == "qa_mc"


def test_hoc_as_bigbio_text_multilabel(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "HoC" / "test.tsv").read_text(encoding="utf-8").splitlines()[: HOC_ROWS + 1]
    (tmp_path / "hoc.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    native = good(convert("hoc_tsv", tmp_path / "hoc.tsv"))
    items = [
        {"id": str(n), "document_id": record.id, "text": record.text, "labels": record.labels}
        for n, record in enumerate(native)
    ]
    path = write_jsonl(tmp_path / "hallmarks_of_cancer_bigbio_text.jsonl", items)
    records = good(convert("bigbio_text", path, multilabel=True))
    assert len(records) == len(native) == HOC_ROWS
    assert [set(record.labels) for record in records] == [set(record.labels) for record in native]
    assert sum(len(record.labels) > 1 for record in records) == 27
    assert {record.task for record in records} == {"tc_multilabel"}
    # Without the option a catalogue entry of task tc_multilabel reads it the same way ...
    entry = DatasetEntry(name="hoc", format="bigbio_text", uri=str(path), language="en", task="tc_multilabel")
    assert [item.labels for item in good(list(iter_records(entry, Storage())))] == [r.labels for r in records]
    # ... and read as single-label (tc), each multi-label sentence is refused, naming the field.
    rejected = [item for item in convert("bigbio_text", path) if isinstance(item, BadRecord)]
    assert (
        len(rejected) == 27 and "field 'labels'" in rejected[0].reason and "multilabel" in rejected[0].reason
    )


# -- spec-written files: nested events, discontiguous mentions, pairs, te, t2t ---------------------

PASSAGE_1 = "MDM2 phosphorylation of p53 is reduced."
PASSAGE_2 = "Both left and right ventricles dilated."
KB_DOCUMENT: dict[str, Any] = {
    "id": "doc-1",
    "document_id": "PMID:1",
    "passages": [
        {"id": "p1", "type": "title", "text": [PASSAGE_1], "offsets": [[0, 39]]},
        {"id": "p2", "type": "abstract", "text": [PASSAGE_2], "offsets": [[40, 79]]},
    ],
    "entities": [
        {"id": "T1", "type": "Protein", "text": ["MDM2"], "offsets": [[0, 4]], "normalized": [{"db_name": "UniProt", "db_id": "Q00987"}]},
        {"id": "T2", "type": "Protein", "text": ["p53"], "offsets": [[24, 27]], "normalized": []},
        {"id": "T3", "type": "Anatomy", "text": ["left", "ventricles"], "offsets": [[45, 49], [60, 70]], "normalized": []},
    ],
    "events": [
        {"id": "E1", "type": "Phosphorylation", "trigger": {"text": ["phosphorylation"], "offsets": [[5, 20]]},
         "arguments": [{"role": "Theme", "ref_id": "T2"}, {"role": "Cause", "ref_id": "T1"}]},
        {"id": "E2", "type": "Negative_regulation", "trigger": {"text": ["reduced"], "offsets": [[31, 38]]},
         "arguments": [{"role": "Theme", "ref_id": "E1"}]},
    ],
    "coreferences": [{"id": "C1", "entity_ids": ["T1", "T2"]}],
    "relations": [{"id": "R1", "type": "Binds", "arg1_id": "T1", "arg2_id": "T2", "normalized": []}],
}  # fmt: skip


def test_kb_nested_events_and_discontiguous_mention(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="taiyi_ray.data.formats.bigbio"):
        (record,) = good(convert("bigbio_kb", write_jsonl(tmp_path / "kb.jsonl", [KB_DOCUMENT])))
    assert record.text == f"{PASSAGE_1} {PASSAGE_2}"
    assert (record.id, record.document_id, record.task) == ("doc-1", "PMID:1", "ee")
    left = record.entities[2]
    assert (left.text, left.offsets) == ("left ventricles", [(45, 49), (60, 70)])
    assert record.entities[0].normalized[0].key() == "UniProt:Q00987"
    regulation = record.events[1]
    assert (regulation.trigger, regulation.trigger_offsets) == ("reduced", [(31, 38)])
    assert [(argument.role, argument.ref_id) for argument in regulation.arguments] == [("Theme", "E1")]
    assert [(argument.role, argument.ref_id) for argument in record.events[0].arguments] == [
        ("Theme", "T2"),
        ("Cause", "T1"),
    ]
    assert [(r.type, r.head_id, r.tail_id) for r in record.relations] == [("Binds", "T1", "T2")]
    assert "1 coreference chains not stored" in caplog.text


def test_kb_discontiguous_mention_given_whole(tmp_path: Path) -> None:
    whole = {**KB_DOCUMENT["entities"][2], "text": ["left ventricles"]}  # one piece for two spans
    document = {**KB_DOCUMENT, "entities": [*KB_DOCUMENT["entities"][:2], whole]}
    (record,) = good(convert("bigbio_kb", write_jsonl(tmp_path / "kb.jsonl", [document])))
    assert (record.entities[2].text, record.entities[2].offsets) == ("left ventricles", [(45, 49), (60, 70)])


def test_kb_task_follows_content(tmp_path: Path) -> None:
    without_events = {**KB_DOCUMENT, "id": "doc-2", "events": []}
    bare = {**without_events, "id": "doc-3", "relations": []}
    path = write_jsonl(tmp_path / "kb.jsonl", [KB_DOCUMENT, without_events, bare])
    assert [record.task for record in good(convert("bigbio_kb", path))] == ["ee", "re", "ner"]


def test_pairs_scores_as_sts_and_classes_as_text_pair(tmp_path: Path) -> None:
    items = [
        {"id": "1", "document_id": "s1", "text_1": "Cells divide.", "text_2": "Cells split.", "label": "3.2"},
        {"id": "2", "document_id": "s2", "text_1": "A gene.", "text_2": "A protein.", "label": "4"},
    ]
    path = write_jsonl(tmp_path / "biosses_bigbio_pairs.jsonl", items)
    scores = good(convert("bigbio_pairs", path, score=True))
    assert [(r.task, r.text, r.context, r.answer, r.labels) for r in scores] == [
        ("sts", "Cells divide.", "Cells split.", "3.2", []),
        ("sts", "A gene.", "A protein.", "4.0", []),
    ]
    classes = good(convert("bigbio_pairs", path))
    assert [(r.task, r.labels, r.answer) for r in classes] == [
        ("text_pair", ["3.2"], None),
        ("text_pair", ["4"], None),
    ]
    assert [r.answer for r in good(convert("bigbio_pairs", path, task="sts"))] == ["3.2", "4.0"]


def test_te_premise_and_hypothesis(tmp_path: Path) -> None:
    item = {"id": "te-1", "premise": "Aspirin thins blood.", "hypothesis": "Aspirin is an anticoagulant.", "label": "entailment"}  # fmt: skip
    (record,) = good(convert("bigbio_te", write_jsonl(tmp_path / "scitail_bigbio_te.jsonl", [item])))
    assert (record.task, record.id, record.document_id) == ("text_pair", "te-1", "te-1")
    assert (record.text, record.context, record.labels) == (
        item["premise"],
        item["hypothesis"],
        ["entailment"],
    )


def test_t2t_generation_and_translation(tmp_path: Path) -> None:
    item = {"id": "0", "document_id": "d0", "text_1": "也许不能。", "text_2": "probably not.", "text_1_name": "zh", "text_2_name": "en"}  # fmt: skip
    path = write_jsonl(tmp_path / "paramed_bigbio_t2t.jsonl", [item])
    (generation,) = good(convert("bigbio_t2t", path))
    assert (generation.task, generation.text, generation.answer) == (
        "generation",
        "也许不能。",
        "probably not.",
    )
    (translation,) = good(convert("bigbio_t2t", path, translation=True))  # the record language is en
    assert (translation.task, translation.text, translation.answer) == (
        "translation",
        "probably not.",
        "也许不能。",
    )
    other = write_jsonl(tmp_path / "other.jsonl", [{**item, "text_1_name": "fr", "text_2_name": "de"}])
    assert (
        "neither the record language 'en'" in only_bad(convert("bigbio_t2t", other, translation=True)).reason
    )


def test_qa_open_types_join_answers(tmp_path: Path) -> None:
    items = [
        {"id": "q1", "question_id": "q1", "document_id": "d1", "question": "Which genes?", "type": "list", "choices": [], "context": "BRCA1 and TP53 ...", "answer": ["BRCA1", "TP53"]},
        {"id": "q2", "question_id": "q2", "document_id": "d2", "question": "What is X?", "type": "factoid", "choices": [], "context": "", "answer": ["a kinase"]},
    ]  # fmt: skip
    first, second = good(convert("bigbio_qa", write_jsonl(tmp_path / "bioasq_bigbio_qa.jsonl", items)))
    assert (first.task, first.answer, first.context) == ("qa_open", "BRCA1; TP53", "BRCA1 and TP53 ...")
    assert (second.answer, second.context) == ("a kinase", None)
    assert (
        "catalogue entry reads qa_yesno"
        in only_bad(convert("bigbio_qa", tmp_path / "bioasq_bigbio_qa.jsonl", task="qa_yesno")[:1]).reason
    )


# -- bad input ---------------------------------------------------------------------------------------


def test_kb_entity_offsets_that_do_not_spell_its_text(tmp_path: Path) -> None:
    broken = {**KB_DOCUMENT, "id": "doc-2"}
    broken["entities"] = [
        *KB_DOCUMENT["entities"][:2],
        {**KB_DOCUMENT["entities"][2], "offsets": [[45, 49], [61, 71]]},
    ]
    items = convert("bigbio_kb", write_jsonl(tmp_path / "kb.jsonl", [KB_DOCUMENT, broken]))
    assert [item.id for item in items if isinstance(item, Record)] == ["doc-1"]
    rejected = only_bad(items)
    assert (rejected.line, rejected.record_id) == (2, "doc-2")
    assert rejected.reason == (
        "entity 'T3' text 'left ventricles' does not match the document text at [45, 49), [61, 71): "
        "'left entricles ' "
        "(offsets count in the passages joined by one space)"
    )


def test_qa_without_answer(tmp_path: Path) -> None:
    item = {
        "id": "q1",
        "question_id": "q1",
        "document_id": "1",
        "question": "Is it?",
        "type": "yesno",
        "choices": ["yes", "no", "maybe"],
        "context": "c",
    }
    path = write_jsonl(tmp_path / "qa.jsonl", [item, {**item, "id": "q2", "answer": ["<BB_NULL_STR>"]}])
    rejected = [item for item in convert("bigbio_qa", path) if isinstance(item, BadRecord)]
    assert [item.record_id for item in rejected] == ["q1", "q2"]
    assert all("no label: field 'answer' is missing or empty" in item.reason for item in rejected)
    records = good(convert("bigbio_qa", path, unlabelled=True))
    assert [(record.id, record.answer, record.task) for record in records] == [
        ("q1", None, "qa_yesno"),
        ("q2", None, "qa_yesno"),
    ]


def test_qa_multiple_choice_answer_not_among_choices(tmp_path: Path) -> None:
    item = {
        "id": "m1",
        "question": "Which?",
        "type": "multiple_choice",
        "choices": ["Aspirin", "Heparin"],
        "answer": ["Warfarin"],
    }
    reason = only_bad(convert("bigbio_qa", write_jsonl(tmp_path / "qa.jsonl", [item]))).reason
    assert reason == "field 'answer': 'Warfarin' is not among the choices ['Aspirin', 'Heparin']"


def test_text_without_labels_and_pairs_with_a_word_for_a_score(tmp_path: Path) -> None:
    text = write_jsonl(
        tmp_path / "text.jsonl", [{"id": "t1", "document_id": "d", "text": "A sentence.", "labels": []}]
    )
    rejected = only_bad(convert("bigbio_text", text))
    assert rejected.record_id == "t1" and "field 'labels' is missing or empty" in rejected.reason
    assert good(convert("bigbio_text", text, unlabelled=True))[0].labels == []
    pairs = write_jsonl(
        tmp_path / "pairs.jsonl", [{"id": "p1", "text_1": "a", "text_2": "b", "label": "high"}]
    )
    assert only_bad(convert("bigbio_pairs", pairs, score=True)).reason == (
        "field 'label': 'high' is not a number (an sts file holds similarity scores)"
    )


def test_cli_convert_bigbio_kb_needs_no_other_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_jsonl(tmp_path / "kb.jsonl", [KB_DOCUMENT])
    output = tmp_path / "out.jsonl"
    assert (
        main(["data", "convert", "--format", "bigbio_kb", "--input", str(source), "--output", str(output)])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["records"] == 1
    (line,) = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert (line["task"], line["language"], line["dataset"]) == ("ee", "en", "kb")
    assert [event["id"] for event in line["events"]] == ["E1", "E2"]
