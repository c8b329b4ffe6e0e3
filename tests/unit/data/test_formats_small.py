"""Converters on small files written here: formats without a real file, and format details."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.config.data import Language
from taiyi_ray.data.formats import FORMATS, BadRecord, Source, _jsonstream
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage


def records(fmt: str, path: str, language: Language = "en", unlabelled: bool = False) -> list[Record]:
    source = Source(
        uri=path, dataset="t", split="test", language=language, storage=Storage(), unlabelled=unlabelled
    )
    items = list(FORMATS[fmt](source))
    assert all(isinstance(item, Record) for item in items), items
    return items  # type: ignore[return-value]


def test_litcovid_csv_official_layout(write) -> None:
    text = (
        "pmid,journal,title,abstract,keywords,pub_type,authors,doi,label\r\n"
        '32511222,Lancet,"Remdesivir, a trial","Line one\nline two",remdesivir,Journal Article,"Wang, Y",10.1/x,Treatment;Mechanism\r\n'
        "32511223,BMJ,Masks,Community masks.,,News,B,10.1/y,Prevention\r\n"
    )
    first, second = records("litcovid_csv", write("BC7-LitCovid-Train.csv", text))
    assert (first.id, first.document_id, first.task) == ("32511222", "32511222", "tc_multilabel")
    assert first.text == "Remdesivir, a trial\nLine one\nline two"
    assert first.labels == ["Treatment", "Mechanism"]
    assert second.labels == ["Prevention"]


def test_litcovid_csv_without_label_column(write) -> None:
    text = "pmid,journal,title,abstract,keywords,pub_type,authors,doi\n7,J,T,A,k,p,a,d\n"
    path = write("test.csv", text)
    (record,) = records("litcovid_csv", path, unlabelled=True)
    assert record.labels == [] and record.text == "T\nA"
    source = Source(uri=path, dataset="t", split="test", language="en", storage=Storage())
    (refused,) = FORMATS["litcovid_csv"](source)
    assert isinstance(refused, BadRecord) and refused.record_id == "7" and refused.line == 2
    assert "no label: field 'label'" in refused.reason


def test_sharegpt_and_openai_messages(write) -> None:
    lines = [
        {
            "id": "conv-1",
            "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "What is a fever?"},
                {"from": "gpt", "value": "A raised temperature."},
            ],
        },
        {
            "messages": [
                {"role": "user", "content": "头痛怎么办？"},
                {"role": "assistant", "content": "多休息。"},
                {"role": "user", "content": "还有呢？"},
            ]
        },
    ]
    first, second = records(
        "sharegpt_jsonl",
        write("chat.jsonl", "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)),
    )
    assert first.id == "conv-1" and [turn.role for turn in first.turns] == ["system", "user", "assistant"]
    assert second.id == "chat.jsonl:2" and second.turns[-1].content == "还有呢？"


def test_alpaca_array_and_jsonl_with_history(write) -> None:
    items = [
        {"instruction": "Translate to Chinese.", "input": "fever", "output": "发热"},
        {
            "instruction": "And headache?",
            "input": "",
            "output": "头痛",
            "history": [["Translate fever.", "发热"]],
            "system": "You translate.",
        },
    ]
    from_array = records("alpaca_json", write("a.json", json.dumps(items, ensure_ascii=False, indent=2)))
    from_lines = records(
        "alpaca_json", write("a.jsonl", "\n".join(json.dumps(item, ensure_ascii=False) for item in items))
    )
    assert [record.turns for record in from_array] == [record.turns for record in from_lines]
    assert from_array[0].turns[0].content == "Translate to Chinese.\n\nfever"
    assert [turn.role for turn in from_array[1].turns] == ["system", "user", "assistant", "user", "assistant"]


def test_unified_round_trip_through_convert_file(write, tmp_path) -> None:
    from taiyi_ray.data.convert import convert_file, read_records

    source = write(
        "cdr.txt",
        "1|t|Aspirin harms.\n1|a|It causes ulcers.\n1\t0\t7\tAspirin\tChemical\tD001241\n1\t25\t31\tulcers\tDisease\tD014456\n1\tCID\tD001241\tD014456\n",
    )
    report = convert_file("pubtator_cdr", source, str(tmp_path / "out.jsonl"), "fail", Storage())
    assert (report.records, report.rejects, report.rejects_path) == (1, 0, None)
    (original,) = records("pubtator_cdr", source)
    (again,) = records("unified_jsonl", str(tmp_path / "out.jsonl"))
    assert again.model_dump(exclude={"dataset", "split"}) == original.model_dump(exclude={"dataset", "split"})
    assert (again.dataset, again.split) == (
        "cdr",
        "train",
    )  # convert_file's defaults: file stem, split from name
    assert list(read_records(str(tmp_path / "out.jsonl"))) == [again]


def test_cmeie_plain_string_objects_and_shared_entities(write) -> None:
    line = {
        "text": "糖尿病可引起多尿和多饮。",
        "spo_list": [
            {
                "predicate": "临床表现",
                "subject": "糖尿病",
                "subject_type": "疾病",
                "object": "多尿",
                "object_type": "症状",
            },
            {
                "predicate": "临床表现",
                "subject": "糖尿病",
                "subject_type": "疾病",
                "object": {"@value": "多饮"},
                "object_type": {"@value": "症状"},
            },
            {
                "predicate": "临床表现",
                "subject": "糖尿病",
                "subject_type": "疾病",
                "object": "多饮",
                "object_type": "症状",
            },
        ],
    }
    (record,) = records("cmeie", write("c.jsonl", json.dumps(line, ensure_ascii=False)), "zh")
    assert [(entity.text, entity.offsets) for entity in record.entities] == [
        ("糖尿病", [(0, 3)]),
        ("多尿", [(6, 8)]),
        ("多饮", [(9, 11)]),
    ]
    assert len(record.relations) == 3  # duplicates kept as the source has them


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=12,
    ),
    indent=st.sampled_from([None, 1, 4]),
    chunk=st.integers(min_value=1, max_value=64),
)
def test_json_stream_equals_json_load(items: list[object], indent: int | None, chunk: int) -> None:
    text = json.dumps(items, indent=indent, ensure_ascii=False)
    original = _jsonstream.CHUNK_BYTES
    _jsonstream.CHUNK_BYTES = chunk
    try:
        streamed = list(_jsonstream.iter_json_items(io.BytesIO(text.encode("utf-8"))))
    finally:
        _jsonstream.CHUNK_BYTES = original
    assert [item.error for item in streamed] == [None] * len(items)
    assert [item.value for item in streamed] == items
    lines = text.split("\n")
    for item in streamed:  # each item starts on the line the stream says
        assert item.raw.split("\n")[0] in lines[item.line - 1]


def test_json_stream_object_members_and_trailing_garbage() -> None:
    members = list(_jsonstream.iter_json_items(io.BytesIO(b'\xef\xbb\xbf{"a": 1,\n "b": [2]}')))
    assert [(item.key, item.value, item.line) for item in members] == [("a", 1, 1), ("b", [2], 2)]
    broken = list(_jsonstream.iter_json_items(io.BytesIO(b"[1, 2]\n[3]")))
    assert [item.value for item in broken[:2]] == [1, 2]
    assert broken[2].error is not None and "extra data after the top-level value" in broken[2].error
