"""Instruction building: templates, deterministic choice, answers, long inputs, dialogue."""

from __future__ import annotations

import string
from collections import Counter

import pytest

from taiyi_ray.config.data import DatasetEntry
from taiyi_ray.data.answers import answer_space, gold_prediction, parse_with
from taiyi_ray.data.instruct import (
    PLACEHOLDERS,
    TEMPLATE_TASKS,
    build_prompt,
    build_samples,
    build_samples_counted,
    choose_template,
    gold_answer,
    templates,
)
from taiyi_ray.data.schema import Entity, Event, EventArgument, Record, Relation, Turn

REQUIRED = {
    "ner": {"text", "entity_types"},
    "re": {"text", "relation_types"},
    "ee": {"text", "event_types"},
    "tc": {"text", "labels"},
    "tc_multilabel": {"text", "labels"},
    "qa_yesno": {"question", "context"},
    "qa_mc": {"question", "choices"},
    "qa_open": {"question", "context_block"},
    "translation": {"text", "target_language"},
    "text_pair": {"text", "text_b", "labels"},
    "sts": {"text", "text_b", "score_range"},
    "generation": {"text", "task_description"},
}


@pytest.mark.parametrize("task", TEMPLATE_TASKS)
@pytest.mark.parametrize("language", ["en", "zh"])
def test_at_least_five_distinct_templates_using_only_known_placeholders(task: str, language: str) -> None:
    found = templates(task, language)  # type: ignore[arg-type]
    assert len(found) >= 5 and len(set(found)) == len(found)
    for template in found:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        assert fields <= PLACEHOLDERS[task], (template, fields - PLACEHOLDERS[task])  # type: ignore[index]
        assert REQUIRED[task] <= fields, (template, REQUIRED[task] - fields)


def test_template_choice_is_deterministic_and_spread() -> None:
    first = [choose_template("ner", "en", 0, f"d\x00{number}") for number in range(300)]
    again = [choose_template("ner", "en", 0, f"d\x00{number}") for number in range(300)]
    other_seed = [choose_template("ner", "en", 1, f"d\x00{number}") for number in range(300)]
    assert first == again and first != other_seed
    counts = Counter(first)
    assert set(counts) == set(templates("ner", "en")) and min(counts.values()) >= 15


def cdr_record(text: str, mentions: list[tuple[str, str, str]], cid: list[tuple[str, str]]) -> Record:
    entities, position = [], 0
    for number, (mention, kind, concept) in enumerate(mentions, start=1):
        start = text.index(mention, position)
        entities.append(
            Entity(
                id=f"T{number}",
                type=kind,
                text=mention,
                offsets=[(start, start + len(mention))],
                normalized=[{"db": "MESH", "id": concept}],
            )
        )
        position = start
    relations = [Relation(type="CID", head_id=f"MESH:{head}", tail_id=f"MESH:{tail}") for head, tail in cid]
    return Record(
        id="42",
        document_id="42",
        dataset="cdr",
        language="en",
        task="re",
        text=text,
        entities=entities,
        relations=relations,
    )


ENTRY_RE = DatasetEntry(name="cdr", format="pubtator_cdr", uri="x", language="en", task="re")


def test_sample_answer_is_the_gold_and_prompt_is_everything_before_it() -> None:
    record = cdr_record(
        "Lithium causes tremor. It is safe.",
        [("Lithium", "Chemical", "D1"), ("tremor", "Disease", "D2")],
        [("D1", "D2")],
    )
    (sample,) = build_samples(record, ENTRY_RE, seed=3)
    assert [message.role for message in sample.messages] == ["user", "assistant"]
    assert (
        sample.messages[-1].content
        == gold_answer(record, ENTRY_RE)
        == "chemical-induced disease: [Lithium, tremor]"
    )
    assert build_prompt(record, ENTRY_RE, seed=3) == sample.messages[:-1]
    assert (
        record.text in sample.messages[0].content and "chemical-induced disease" in sample.messages[0].content
    )
    assert (sample.id, sample.source_id, sample.dataset) == ("cdr/42", "42", "cdr")


def test_long_documents_become_windows_that_keep_every_mention() -> None:
    sentences = [f"Sentence {number} says drug{number} causes illness{number}." for number in range(12)]
    text = " ".join(sentences)
    mentions = [(f"drug{n}", "Chemical", f"C{n}") for n in range(12)] + [
        (f"illness{n}", "Disease", f"D{n}") for n in range(12)
    ]
    mentions.sort(key=lambda item: text.index(item[0] + (" " if item[1] == "Chemical" else ".")))
    record = cdr_record(text, mentions, [(f"C{n}", f"D{n}") for n in range(12)] + [("C0", "D11")])
    entry = ENTRY_RE.model_copy(update={"max_input_chars": 120})
    samples, counts = build_samples_counted(record, entry, seed=0)
    assert counts.windowed and counts.samples == len(samples) > 1
    assert counts.dropped_relations == 1  # C0 -> D11: its ends never share a window
    parsed = set()
    for sample in samples:
        assert sample.id.startswith("cdr/42#w")
        prompt = sample.messages[0].content
        passage = next(sentence for sentence in sentences if sentence in prompt)
        assert passage  # windows hold whole sentences
        result = parse_with(sample.messages[-1].content, answer_space(record, entry))
        parsed |= set(result.prediction.relations)
    assert parsed == {("CID", f"drug{n}", f"illness{n}") for n in range(12)}
    assert build_prompt(record, entry, 0)[0].content.count("Sentence") == 12  # evaluation prompts are whole


def test_qa_context_is_cut_and_counted() -> None:
    record = Record(
        id="1", document_id="1", dataset="pqa", language="en", task="qa_yesno", question="Does it work?",
        context=" ".join(["word"] * 400), answer="yes",
    )  # fmt: skip
    entry = DatasetEntry(
        name="pqa", format="pubmedqa", uri="x", language="en", task="qa_yesno", max_input_chars=300
    )
    (sample,), counts = build_samples_counted(record, entry, seed=0)
    assert counts.truncated and not counts.windowed
    assert "word word …" in sample.messages[0].content and sample.messages[-1].content == "Answer: yes"
    assert len(sample.messages[0].content) < 1000


def test_dialogue_samples_and_prompts() -> None:
    turns = [
        Turn(role="system", content="Be brief."),
        Turn(role="user", content="Hi"),
        Turn(role="assistant", content="Hello"),
        Turn(role="user", content="Bye?"),
    ]
    record = Record(id="c", document_id="c", dataset="chat", language="en", task="dialogue", turns=turns)
    entry = DatasetEntry(name="chat", format="sharegpt_jsonl", uri="x", language="en", task="dialogue")
    (sample,) = build_samples(record, entry, seed=0)
    assert [message.role for message in sample.messages] == [
        "system",
        "user",
        "assistant",
    ]  # trailing user dropped
    assert [message.content for message in build_prompt(record, entry, 0)] == [
        "Be brief.",
        "Hi",
        "Hello",
        "Bye?",
    ]


def test_chinese_ner_prompt_names_types_in_chinese() -> None:
    record = Record(
        id="1", document_id="1", dataset="cmeee", language="zh", task="ner", text="患者发热。",
        entities=[Entity(id="T1", type="sym", text="发热", offsets=[(2, 4)])],
    )  # fmt: skip
    entry = DatasetEntry(name="cmeee", format="cmeee", uri="x", language="zh", task="ner")
    (sample,) = build_samples(record, entry, seed=0)
    assert "疾病、临床表现、医疗程序" in sample.messages[0].content
    assert sample.messages[1].content.splitlines()[1] == "临床表现：发热"


def test_real_cdr_documents_window_without_losing_mentions(real_records, shared_data) -> None:
    records = real_records("pubtator_cdr", "BC5CDR-CDR/CDR_TestSet.PubTator.txt", "en", "ner")
    entry = DatasetEntry(
        name="cdr", format="pubtator_cdr", uri="x", language="en", task="ner", max_input_chars=1200
    )
    windowed = extra = 0
    for record in records:
        samples, counts = build_samples_counted(record, entry, seed=0)
        windowed += counts.windowed
        extra += len(samples) - 1
        found = set()
        for sample in samples:
            assert len(sample.messages[0].content) < 1200 + 600  # passage bound + template
            found |= set(
                parse_with(sample.messages[1].content, answer_space(record, entry)).prediction.entities
            )
        assert found == set(gold_prediction(record, answer_space(record, entry)).entities), record.id
    assert windowed > 100 and extra >= windowed


def test_unlabelled_records_make_no_sample_but_empty_ner_does() -> None:
    query = Record(id="q", document_id="q", dataset="kuake", language="zh", task="tc", text="头痛怎么办")
    entry = DatasetEntry(name="kuake", format="kuake_qic", uri="x", language="zh", task="tc")
    samples, counts = build_samples_counted(query, entry, seed=0)
    assert samples == [] and counts.unlabelled
    sentence = Record(
        id="s", document_id="s", dataset="bio", language="en", task="ner", text="Nothing here ."
    )
    bio = DatasetEntry(
        name="bio", format="bio_tsv", uri="x", language="en", task="ner", entity_types=["Chemical"]
    )
    (sample,) = build_samples(sentence, bio, seed=0)
    assert sample.messages[-1].content == "Chemical: None"


def test_sts_prompt_offers_the_entry_scale_and_the_answer_parses_back() -> None:
    record = Record(
        id="7", document_id="7", dataset="biosses", language="en", task="sts",
        text="Aspirin lowers fever.", context="Fever falls with aspirin.", answer="3.6",
    )  # fmt: skip
    entry = DatasetEntry(name="biosses", format="x", uri="x", language="en", task="sts")
    (sample,) = build_samples(record, entry, seed=0)
    prompt, answer = sample.messages[0].content, sample.messages[1].content
    assert "0 to 4" in prompt and record.text in prompt and (record.context or "") in prompt
    assert answer == "Score: 3.6"
    assert parse_with(answer, answer_space(record, entry)).prediction.answer == "3.6"
    wider = entry.model_copy(update={"options": {"score_min": 0, "score_max": 5}})
    assert "0 to 5" in build_prompt(record, wider, seed=0)[0].content
    zh = record.model_copy(update={"language": "zh"})
    assert "0到4" in build_prompt(zh, entry.model_copy(update={"language": "zh"}), seed=0)[0].content
    for options in ({"score_max": "four"}, {"score_min": 4, "score_max": 1}):
        with pytest.raises(ValueError, match="dataset 'biosses': options score_m"):
            build_prompt(record, entry.model_copy(update={"options": options}), seed=0)


def test_generation_prompt_says_what_to_write_and_unlabelled_inputs_make_no_sample() -> None:
    record = Record(
        id="1", document_id="1", dataset="titles", language="zh", task="generation",
        text="本研究观察了阿司匹林对发热的作用。", answer="阿司匹林退热研究",
    )  # fmt: skip
    entry = DatasetEntry(name="titles", format="x", uri="x", language="zh", task="generation")
    (sample,) = build_samples(record, entry, seed=1)
    assert sample.messages[1].content == "阿司匹林退热研究" and record.text in sample.messages[0].content
    assert "摘要、报告、标题" in sample.messages[0].content
    titled = entry.model_copy(update={"options": {"task_description": "请为下文拟一个标题。"}})
    assert "请为下文拟一个标题。" in build_prompt(record, titled, seed=1)[0].content
    samples, counts = build_samples_counted(record.model_copy(update={"answer": None}), entry, seed=1)
    assert samples == [] and counts.unlabelled


# -- event extraction --------------------------------------------------------------------------------

ENTRY_EE = DatasetEntry(name="ge", format="unified_jsonl", uri="x", language="en", task="ee")


def ge_record(sentences: list[str]) -> Record:
    """Each sentence "X induces phosphorylation of Y." gives entities X, Y, a Phosphorylation of Y and
    a Positive_regulation whose Theme is that Phosphorylation and Cause X."""
    text, entities, events = "", [], []
    for number, sentence in enumerate(sentences):
        base = len(text)
        cause, theme = sentence.split()[0], sentence.split()[-1].rstrip(".")
        entities += [
            Entity(id=f"T{number}a", type="Protein", text=cause, offsets=[(base, base + len(cause))]),
            Entity(
                id=f"T{number}b",
                type="Protein",
                text=theme,
                offsets=[(base + sentence.index(theme), base + sentence.index(theme) + len(theme))],
            ),
        ]
        induce, phosphorylation = base + sentence.index("induces"), base + sentence.index("phosphorylation")
        events += [
            Event(
                id=f"E{number}p",
                type="Phosphorylation",
                trigger="phosphorylation",
                trigger_offsets=[(phosphorylation, phosphorylation + 15)],
                arguments=[EventArgument(role="Theme", ref_id=f"T{number}b")],
            ),
            Event(
                id=f"E{number}r",
                type="Positive_regulation",
                trigger="induces",
                trigger_offsets=[(induce, induce + 7)],
                arguments=[
                    EventArgument(role="Theme", ref_id=f"E{number}p"),
                    EventArgument(role="Cause", ref_id=f"T{number}a"),
                ],
            ),
        ]
        text += sentence + " "
    return Record(
        id="7",
        document_id="7",
        dataset="ge",
        language="en",
        task="ee",
        text=text.rstrip(),
        entities=entities,
        events=events,
    )


def test_ee_sample_answer_and_prompt() -> None:
    record = ge_record(["TNF induces phosphorylation of TRAF2."])
    (sample,) = build_samples(record, ENTRY_EE, seed=1)
    assert sample.messages[-1].content == (
        "Positive_regulation: induces | Theme: Phosphorylation(phosphorylation); Cause: TNF\n"
        "Phosphorylation: phosphorylation | Theme: TRAF2"
    )
    prompt = sample.messages[0].content
    assert record.text in prompt and "Phosphorylation, Positive_regulation" in prompt  # record order
    zh = record.model_copy(update={"language": "zh"})
    (sample_zh,) = build_samples(zh, ENTRY_EE.model_copy(update={"language": "zh"}), seed=1)
    assert sample_zh.messages[-1].content.startswith("Positive_regulation：induces｜Theme：Phosphorylation（")
    assert "事件" in sample_zh.messages[0].content


def test_long_ee_documents_window_and_count_the_events_they_lose() -> None:
    sentences = [f"P{n}x induces phosphorylation of Q{n}y." for n in range(8)]
    record = ge_record(sentences)
    # a cross-sentence event: a Binding of the first and the last protein can sit in no window
    binding = Event(
        id="B1",
        type="Binding",
        trigger="induces",
        trigger_offsets=record.events[1].trigger_offsets,
        arguments=[EventArgument(role="Theme", ref_id="T0b"), EventArgument(role="Theme2", ref_id="T7b")],
    )
    nesting = Event(
        id="R1",
        type="Regulation",
        trigger="induces",
        trigger_offsets=record.events[1].trigger_offsets,
        arguments=[EventArgument(role="Theme", ref_id="B1")],
    )
    record = record.model_copy(update={"events": [*record.events, binding, nesting]})
    entry = ENTRY_EE.model_copy(update={"max_input_chars": 90})
    samples, counts = build_samples_counted(record, entry, seed=0)
    assert counts.windowed and counts.samples == len(samples) > 1
    assert counts.dropped_events == 2  # the Binding, and the Regulation nesting it
    found = set()
    for sample in samples:
        found |= set(parse_with(sample.messages[-1].content, answer_space(record, entry)).prediction.events)
    assert found == set(gold_prediction(record, answer_space(record, entry)).events) - {
        event
        for event in gold_prediction(record, answer_space(record, entry)).events
        if event.type in ("Binding", "Regulation")
    }
    assert len(found) == 16
