"""Task endpoints' logic: request -> record + answer space -> prompt, and generated answer -> structure.

A gold answer serialised by the data package must come back as the same entities (with the right
character offsets in the input), relations, labels or option.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taiyi_ray.data import instruct
from taiyi_ray.data.schema import Entity, Event, EventArgument, Record, Relation
from taiyi_ray.serve import tasks as t
from taiyi_ray.serve.errors import APIError

TEXT = "Famotidine-associated delirium. A series of six cases. Famotidine is an H2 blocker."


def with_gold(record: Record, **gold: object) -> Record:
    return record.model_copy(update=gold)


def test_ner_gold_answer_comes_back_with_offsets() -> None:
    request = t.NERRequest(text=TEXT)
    record, entry = t.build_record("ner", request)
    gold = with_gold(
        record,
        entities=[
            Entity(id="T1", type="Chemical", text="Famotidine", offsets=[(0, 10)]),
            Entity(id="T2", type="Disease", text="delirium", offsets=[(22, 30)]),
        ],
    )
    raw = instruct.gold_answer(gold, entry)
    prompt = instruct.build_prompt(record, entry, seed=0)[-1].content
    assert TEXT in prompt and "Chemical" in prompt and "Disease" in prompt  # BC5CDR types by default
    fields = t.structure("ner", request, record, entry, raw)
    assert fields["parsed"] is True
    found = {(entity.type, entity.text): entity.offsets for entity in fields["entities"]}
    assert found == {("Chemical", "Famotidine"): [(0, 10), (55, 65)], ("Disease", "delirium"): [(22, 30)]}
    for (_, text), spans in found.items():
        assert all(TEXT[start:end] == text for start, end in spans)


def test_chinese_ner_uses_cmeee_types_and_offsets() -> None:
    text = "患者出现发热咳嗽，诊断为肺炎。"
    request = t.NERRequest(text=text, language="zh")
    record, entry = t.build_record("ner", request)
    gold = with_gold(record, entities=[Entity(id="T1", type="dis", text="肺炎", offsets=[(12, 14)])])
    fields = t.structure("ner", request, record, entry, instruct.gold_answer(gold, entry))
    assert [(e.type, e.text, e.offsets) for e in fields["entities"]] == [("dis", "肺炎", [(12, 14)])]
    assert "疾病" in instruct.build_prompt(record, entry, seed=0)[-1].content


def test_relations_labels_and_answers_round_trip() -> None:
    re_request = t.RERequest(text="Cisplatin induced nephrotoxicity.")
    record, entry = t.build_record("re", re_request)
    gold = with_gold(
        record,
        entities=[
            Entity(id="a", type="Chemical", text="Cisplatin"),
            Entity(id="b", type="Disease", text="nephrotoxicity"),
        ],
        relations=[Relation(type="CID", head_id="a", tail_id="b")],
    )
    fields = t.structure("re", re_request, record, entry, instruct.gold_answer(gold, entry))
    assert [(r.type, r.head, r.tail) for r in fields["relations"]] == [("CID", "Cisplatin", "nephrotoxicity")]

    tc_request = t.TCRequest(text="A vaccine trial.", labels=["Treatment", "Prevention"], multi_label=True)
    record, entry = t.build_record("tc", tc_request)
    assert record.task == "tc_multilabel"
    raw = instruct.gold_answer(with_gold(record, labels=["Prevention", "Treatment"]), entry)
    assert t.structure("tc", tc_request, record, entry, raw)["labels"] == ["Prevention", "Treatment"]

    qa_request = t.QARequest(question="Which is an NSAID?", choices={"A": "aspirin", "B": "insulin"})
    record, entry = t.build_record("qa", qa_request)
    assert record.task == "qa_mc"
    fields = t.structure(
        "qa", qa_request, record, entry, instruct.gold_answer(with_gold(record, answer="A"), entry)
    )
    assert (fields["answer"], fields["answer_text"]) == ("A", "aspirin")

    yes_no = t.QARequest(question="Is aspirin an NSAID?", context="Aspirin is an NSAID.", qa_type="yes_no")
    record, entry = t.build_record("qa", yes_no)
    assert record.task == "qa_yesno" and t.prompt_field(yes_no) == "context"
    assert t.structure("qa", yes_no, record, entry, "Answer: yes")["answer"] == "yes"


def test_unreadable_output_is_reported_not_raised() -> None:
    request = t.NERRequest(text=TEXT)
    record, entry = t.build_record("ner", request)
    fields = t.structure("ner", request, record, entry, "Fa Fa Fa")
    assert fields["parsed"] is False and fields["entities"] == [] and fields["problems"]


def test_multiple_choice_without_choices_names_the_field() -> None:
    with pytest.raises(APIError) as caught:
        t.build_record("qa", t.QARequest(question="Which?", qa_type="multiple_choice"))
    assert caught.value.status_code == 400 and caught.value.param == "choices"


@pytest.mark.parametrize(
    ("text", "mention", "spans"),
    [
        ("a  b c a b", "a b", [(0, 4), (7, 10)]),  # any whitespace run matches
        ("Aspirin and aspirin", "aspirin", [(12, 19)]),  # verbatim case first
        ("ASPIRIN", "aspirin", [(0, 7)]),  # then case-insensitively
        ("x (y) z", "(y)", [(2, 5)]),  # regex characters are literal
        ("abc", "d", []),
        ("abc", "  ", []),
    ],
)
def test_find_spans(text: str, mention: str, spans: list[tuple[int, int]]) -> None:
    assert t.find_spans(text, mention) == spans


@given(st.text(min_size=1, max_size=40), st.data())
def test_find_spans_finds_any_substring(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start + 1, len(text)))
    mention = text[start:end]
    spans = t.find_spans(text, mention)
    if mention.strip():
        assert spans, (text, mention)
        assert all(
            " ".join(text[a:b].split()).casefold() == " ".join(mention.split()).casefold() for a, b in spans
        )
    else:
        assert spans == []


def test_events_come_back_with_trigger_and_argument_spans() -> None:
    text = "TNF induces phosphorylation of TRAF2; TRAF2 phosphorylation follows."
    request = t.EERequest(text=text)
    record, entry = t.build_record("ee", request)
    prompt = instruct.build_prompt(record, entry, seed=0)[-1].content
    assert record.task == "ee" and text in prompt and "Positive_regulation" in prompt  # GENIA by default
    gold = with_gold(
        record,
        entities=[
            Entity(id="T1", type="Protein", text="TNF", offsets=[(0, 3)]),
            Entity(id="T2", type="Protein", text="TRAF2", offsets=[(31, 36)]),
        ],
        events=[
            Event(id="E1", type="Phosphorylation", trigger="phosphorylation", trigger_offsets=[(12, 27)],
                  arguments=[EventArgument(role="Theme", ref_id="T2")]),
            Event(id="E2", type="Positive_regulation", trigger="induces", trigger_offsets=[(4, 11)],
                  arguments=[EventArgument(role="Theme", ref_id="E1"), EventArgument(role="Cause", ref_id="T1")]),
        ],
    )  # fmt: skip
    fields = t.structure("ee", request, record, entry, instruct.gold_answer(gold, entry))
    assert fields["parsed"] is True
    regulation, phosphorylation = fields["events"]
    assert (regulation.type, regulation.trigger, regulation.offsets) == (
        "Positive_regulation",
        "induces",
        [(4, 11)],
    )
    assert [(a.role, a.text, a.event_type, a.offsets) for a in regulation.arguments] == [
        ("Theme", "phosphorylation", "Phosphorylation", [(12, 27), (44, 59)]),
        ("Cause", "TNF", None, [(0, 3)]),
    ]
    assert phosphorylation.offsets == [(12, 27), (44, 59)]
    assert [(a.role, a.text, a.offsets) for a in phosphorylation.arguments] == [
        ("Theme", "TRAF2", [(31, 36), (38, 43)])
    ]


def test_chinese_events_with_offered_types_and_unreadable_output() -> None:
    text = "肿瘤坏死因子诱导蛋白磷酸化。"
    request = t.EERequest(text=text, language="zh", event_types=["磷酸化"])
    record, entry = t.build_record("ee", request)
    assert "磷酸化" in instruct.build_prompt(record, entry, seed=0)[-1].content
    fields = t.structure("ee", request, record, entry, "磷酸化：磷酸化｜主体：蛋白")
    ((event,),) = [fields["events"]]
    assert (event.type, event.trigger, event.offsets) == ("磷酸化", "磷酸化", [(10, 13)])
    assert [(a.role, a.text, a.offsets) for a in event.arguments] == [("主体", "蛋白", [(8, 10)])]
    unreadable = t.structure("ee", request, record, entry, "我不知道")
    assert unreadable["parsed"] is False and unreadable["events"] == [] and unreadable["problems"]
