"""The event-extraction answer format: exact lines, nested events, tolerance, and round trips.

`parse(serialise(gold)) == gold` must hold for any trigger and argument texts, including the format's
own separators, backslashes, brackets and Chinese text.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.answers import (
    AnswerSpace,
    EventAnswer,
    EventArgumentAnswer,
    Prediction,
    answer_space,
    canonical_text,
    gold_prediction,
    parse_with,
    prediction_to_record,
    serialise,
)
from taiyi_ray.data.schema import Entity, Event, EventArgument, Record

TEXT = "TNF induces phosphorylation of TRAF2 at Ser-55."
EE_EN = AnswerSpace("ee", "en", event_types=("Phosphorylation", "Positive_regulation"))
ENTRY = DatasetEntry(name="ge", format="unified_jsonl", uri="ge.jsonl", language="en", task="ee")


def nested_record() -> Record:
    return Record(
        id="r1",
        document_id="PMID-1",
        dataset="ge",
        language="en",
        task="ee",
        text=TEXT,
        entities=[
            Entity(id="T1", type="Protein", text="TNF", offsets=[(0, 3)]),
            Entity(id="T2", type="Protein", text="TRAF2", offsets=[(31, 36)]),
            Entity(id="T3", type="Entity", text="Ser-55", offsets=[(40, 46)]),
        ],
        events=[
            Event(
                id="E1",
                type="Positive_regulation",
                trigger="induces",
                trigger_offsets=[(4, 11)],
                arguments=[
                    EventArgument(role="Theme", ref_id="E2"),
                    EventArgument(role="Cause", ref_id="T1"),
                ],
            ),
            Event(
                id="E2",
                type="Phosphorylation",
                trigger="phosphorylation",
                trigger_offsets=[(12, 27)],
                arguments=[EventArgument(role="Theme", ref_id="T2"), EventArgument(role="Site", ref_id="T3")],
            ),
        ],
    )


def test_gold_answer_en_zh_and_none() -> None:
    record = nested_record()
    gold = gold_prediction(record, EE_EN)
    assert serialise(gold, EE_EN) == (
        "Positive_regulation: induces | Theme: Phosphorylation(phosphorylation); Cause: TNF\n"
        "Phosphorylation: phosphorylation | Theme: TRAF2; Site: Ser-55"
    )
    zh = AnswerSpace("ee", "zh", event_types=EE_EN.event_types)
    assert serialise(gold, zh) == (
        "Positive_regulation：induces｜Theme：Phosphorylation（phosphorylation）；Cause：TNF\n"
        "Phosphorylation：phosphorylation｜Theme：TRAF2；Site：Ser-55"
    )
    assert serialise(Prediction("ee"), EE_EN) == "None"
    assert serialise(Prediction("ee"), zh) == "无"
    assert parse_with("无", zh).ok and parse_with("None", EE_EN).prediction == Prediction("ee")


def test_answer_space_defaults_to_the_record_event_types() -> None:
    space = answer_space(nested_record(), ENTRY)
    assert space.event_types == ("Positive_regulation", "Phosphorylation")  # first appearance
    offered = answer_space(nested_record(), ENTRY.model_copy(update={"event_types": ["Phosphorylation"]}))
    gold = gold_prediction(nested_record(), offered)
    assert [event.type for event in gold.events] == ["Phosphorylation"]  # types not offered are left out


def test_parser_tolerates_widths_bullets_repeats_and_reports_junk() -> None:
    output = (
        "Here are the events:\n"
        "- **Phosphorylation**：phosphorylation ｜ Theme：TRAF2；Site: Ser-55；Theme: TRAF2\n"
        "Phosphorylation: phosphorylation | Theme: TRAF2; Site: Ser-55\n"  # a repeat
        "Binding: None\n"  # no event of this type (and Binding is not offered anyway)
        "Positive_regulation: induces | Theme: Phosphorylation (phosphorylation); TNF\n"
    )
    result = parse_with(output, EE_EN)
    assert result.ok
    assert result.prediction.events == (
        EventAnswer(
            "Phosphorylation",
            "phosphorylation",
            (EventArgumentAnswer("Theme", "TRAF2"), EventArgumentAnswer("Site", "Ser-55")),
        ),
        EventAnswer(
            "Positive_regulation",
            "induces",
            (EventArgumentAnswer("Theme", "phosphorylation", "Phosphorylation"),),
        ),
    )
    assert "argument without a role: 'TNF'" in result.problems
    assert any("ignored line 'Binding: None'" in problem for problem in result.problems)
    failed = parse_with("I could not find any event.", EE_EN)
    assert not failed.ok and failed.prediction == Prediction("ee")


def test_entity_arguments_that_look_nested_and_none_words_stay_literal() -> None:
    event = EventAnswer(
        "Binding",
        "None",
        (
            EventArgumentAnswer("Theme", "IL-2 (human)"),
            EventArgumentAnswer("Theme2", "None"),
            EventArgumentAnswer("Site", "a|b; c\\"),
        ),
    )
    space = AnswerSpace("ee", "en")
    text = serialise(Prediction("ee", events=(event,)), space)
    assert text == "Binding: \\None | Theme: IL-2 (human\\); Theme2: \\None; Site: a|b\\; c\\\\"
    assert parse_with(text, space).prediction.events == (event,)


def test_prediction_to_record_writes_events_entities_and_nested_refs() -> None:
    record = nested_record()
    gold = gold_prediction(record, EE_EN)
    # the nested Phosphorylation is named but never listed: it is added as an event of its own
    only_outer = Prediction("ee", events=gold.events[:1])
    rebuilt = prediction_to_record(only_outer, record)
    assert [(event.id, event.type, event.trigger) for event in rebuilt.events] == [
        ("E1", "Positive_regulation", "induces"),
        ("E2", "Phosphorylation", "phosphorylation"),
    ]
    assert [(a.role, a.ref_id) for a in rebuilt.events[0].arguments] == [("Theme", "E2"), ("Cause", "P1")]
    assert [(entity.id, entity.text) for entity in rebuilt.entities] == [("P1", "TNF")]
    full = prediction_to_record(gold, record)
    assert gold_prediction(full, EE_EN) == gold
    assert full.id == record.id and full.text == TEXT


# -- round trips on generated records ----------------------------------------------------------------

SPECIAL = ";；|｜()（）\\:：[]，, \n"
texts = st.text(
    st.characters(exclude_categories=("Cs", "Cc"))
    | st.sampled_from(list(SPECIAL))
    | st.sampled_from(list("磷酸化蛋白")),
    min_size=1,
    max_size=12,
).filter(lambda text: bool(canonical_text(text)))
names = st.sampled_from(["Theme", "Cause", "Site", "Theme2", "主体", "ToLoc"])
types = st.sampled_from(["Phosphorylation", "Binding", "Positive_regulation", "结合", "Gene_expression"])


@st.composite
def event_records(draw: st.DrawFn, language: str) -> Record:
    """A passage holding every entity and trigger text with exact offsets, events nesting earlier ones."""
    pieces = draw(st.lists(texts, min_size=1, max_size=5))
    text, entities = "", []
    for number, piece in enumerate(pieces, start=1):
        text += "… "
        entities.append(
            Entity(id=f"T{number}", type="Protein", text=piece, offsets=[(len(text), len(text) + len(piece))])
        )
        text += piece
    events: list[Event] = []
    for number in range(1, draw(st.integers(0, 4)) + 1):
        trigger = draw(texts)
        text += " — "
        offsets = [(len(text), len(text) + len(trigger))]
        text += trigger
        targets = [entity.id for entity in entities] + [event.id for event in events]
        arguments = draw(
            st.lists(st.builds(EventArgument, role=names, ref_id=st.sampled_from(targets)), max_size=3)
        )
        events.append(
            Event(
                id=f"E{number}",
                type=draw(types),
                trigger=trigger,
                trigger_offsets=offsets,
                arguments=arguments,
            )
        )
    fields = {"text": text, "entities": entities, "events": events, "language": language}
    return Record(id="r", document_id="r", dataset="d", task="ee", **fields)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(language=st.sampled_from(["en", "zh"]), data=st.data())
def test_ee_round_trip_generated(language: str, data: st.DataObject) -> None:
    record = data.draw(event_records(language))
    for space in (answer_space(record, ENTRY), AnswerSpace("ee", language)):  # type: ignore[arg-type]
        gold = gold_prediction(record, space)
        text = serialise(gold, space)
        result = parse_with(text, space)
        assert result.ok, (text, result.problems)
        assert result.prediction == gold, text
        assert gold_prediction(prediction_to_record(result.prediction, record), space) == gold
        assert len(gold.events) <= len(record.events)
