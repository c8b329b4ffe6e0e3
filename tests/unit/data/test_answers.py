"""Answer serialisation and parsing: exact formats, tolerance, unparseable output, and round trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from taiyi_ray.data.answers import (
    CMEEE_TYPE_NAMES,
    CMEEE_TYPES,
    CMEIE_PREDICATES,
    HOC_LABELS,
    KUAKE_QIC_LABELS,
    LITCOVID_TOPICS,
    AnswerSpace,
    Prediction,
    canonical_text,
    gold_prediction,
    parse,
    parse_with,
    prediction_to_record,
    serialise,
)
from taiyi_ray.data.schema import Entity, Record, Relation, Turn

NER_EN = AnswerSpace("ner", "en", entity_types=("Chemical", "Disease"))
NER_ZH = AnswerSpace("ner", "zh", entity_types=CMEEE_TYPES)
CID_SPEC = AnswerSpace("re", "en", relation_types=("CID",))
HOC_SPEC = AnswerSpace("tc_multilabel", "en", label_names=HOC_LABELS)
KUAKE_SPEC = AnswerSpace("tc", "zh", label_names=KUAKE_QIC_LABELS)
CHOICES = {"A": "Vitamin C", "B": "Niacin", "C": "Thiamine", "D": "Vitamin D", "E": "Vitamin K"}
MC_SPEC = AnswerSpace("qa_mc", "en", choices=CHOICES)


# -- exact formats -----------------------------------------------------------------------------------


def test_ner_format_en_and_zh() -> None:
    prediction = Prediction(
        "ner", entities=(("Chemical", "aspirin"), ("Chemical", "5;6-dihydro"), ("Chemical", "None"))
    )
    assert serialise(prediction, NER_EN) == "Chemical: aspirin; 5\\;6-dihydro; \\None\nDisease: None"
    zh = Prediction("ner", entities=(("dis", "糖尿病"), ("bod", "腹部；背部")))
    lines = serialise(zh, NER_ZH).splitlines()
    assert lines[0] == "疾病：糖尿病" and lines[1] == "临床表现：无" and "身体：腹部\\；背部" in lines
    assert len(lines) == len(CMEEE_TYPES) == 9


def test_re_label_and_qa_formats() -> None:
    cid = Prediction("re", relations=(("CID", "2,4-D", "rash [severe]"), ("CID", "lithium", "tremor")))
    assert (
        serialise(cid, CID_SPEC)
        == "chemical-induced disease: [2\\,4-D, rash \\[severe\\]]; [lithium, tremor]"
    )
    zh = Prediction("re", relations=(("临床表现", "小细胞肺癌", "咳嗽"),))
    assert serialise(zh, AnswerSpace("re", "zh")) == "临床表现：[小细胞肺癌，咳嗽]"
    assert serialise(Prediction("re"), CID_SPEC) == "None"
    assert serialise(Prediction("tc_multilabel", labels=("none",)), HOC_SPEC) == "Labels: none"
    assert serialise(Prediction("tc", labels=("治疗方案",)), KUAKE_SPEC) == "类别：治疗方案"
    assert serialise(Prediction("qa_yesno", answer="maybe"), AnswerSpace("qa_yesno", "zh")) == "答案：不确定"
    assert serialise(Prediction("qa_mc", answer="C"), MC_SPEC) == "Answer: C. Thiamine"


# -- tolerance ---------------------------------------------------------------------------------------


def test_ner_tolerates_spacing_width_repeats_bullets_and_trailing_text() -> None:
    text = (
        "  - **chemical** ： aspirin ；ibuprofen; aspirin\nDISEASE:none\nThese are all the entities I found."
    )
    result = parse_with(text, NER_EN)
    assert result.ok and result.prediction.entities == (("Chemical", "aspirin"), ("Chemical", "ibuprofen"))
    assert any("These are all" in problem for problem in result.problems)


def test_ner_missing_type_line_and_single_type_without_label() -> None:
    assert parse_with("Disease: fever", NER_EN).prediction.entities == (("Disease", "fever"),)
    single = parse("fever; cough", "ner", "en", entity_types=["Disease"])
    assert single.ok and single.prediction.entities == (("Disease", "fever"), ("Disease", "cough"))


def test_ner_chinese_names_parse_back_to_codes() -> None:
    result = parse_with("疾病：糖尿病；高血压\n身体：无\n微生物类: 肺炎链球菌", NER_ZH)
    assert result.prediction.entities == (("dis", "糖尿病"), ("dis", "高血压"), ("mic", "肺炎链球菌"))
    open_vocabulary = parse("疾病：糖尿病", "ner", "zh")
    assert open_vocabulary.prediction.entities == (("dis", "糖尿病"),)


def test_unparseable_outputs_are_reported() -> None:
    for space, text in [
        (NER_EN, "I cannot help with that."),
        (CID_SPEC, "Aspirin causes ulcers and kidney damage."),
        (HOC_SPEC, "Labels: astrology"),
        (AnswerSpace("qa_yesno", "en"), "I don't know."),
        (MC_SPEC, "Answer: F"),
        (AnswerSpace("qa_open", "en"), "   "),
    ]:
        result = parse_with(text, space)
        assert not result.ok and result.problems, (space.task, text)
        assert result.prediction == Prediction(space.task)
    assert parse_with("None.", NER_EN).ok and parse_with("无", AnswerSpace("re", "zh")).ok


def test_re_tolerates_widths_spaces_repeats_and_escapes() -> None:
    text = "Chemical-induced disease: [aspirin, ulcer] ; [ aspirin ，ulcer]; [2\\,4-D, rash] and that is all"
    result = parse_with(text, CID_SPEC)
    assert result.ok and result.prediction.relations == (
        ("CID", "aspirin", "ulcer"),
        ("CID", "2,4-D", "rash"),
    )
    zh = parse(
        "临床表现：[小细胞肺癌，咳嗽]；【小细胞肺癌, 咯血】", "re", "zh", relation_types=CMEIE_PREDICATES
    )
    assert zh.prediction.relations == (("临床表现", "小细胞肺癌", "咳嗽"), ("临床表现", "小细胞肺癌", "咯血"))
    no_label = parse_with("[aspirin, ulcer]", CID_SPEC)
    assert no_label.ok and no_label.prediction.relations == (("CID", "aspirin", "ulcer"),)


def test_labels_tolerate_commas_case_punctuation_and_text_order() -> None:
    result = parse_with("Labels: Sustaining proliferative signaling, resisting cell death.", HOC_SPEC)
    assert result.prediction.labels == ("sustaining proliferative signaling", "resisting cell death")
    assert parse_with("The hallmarks: none", HOC_SPEC).prediction.labels == ("none",)
    assert parse_with("类别：治疗方案。", KUAKE_SPEC).prediction.labels == ("治疗方案",)
    assert parse_with("我认为属于病因分析，也可能是治疗方案", KUAKE_SPEC).prediction.labels == ("病因分析",)
    topics = parse(
        "Labels: treatment; Case Report; nonsense", "tc_multilabel", "en", label_names=LITCOVID_TOPICS
    )
    assert topics.ok and topics.prediction.labels == ("Treatment", "Case Report")
    assert topics.problems == ("not a known label: 'nonsense'",)


def test_qa_answers_by_letter_text_or_word() -> None:
    yes_no = AnswerSpace("qa_yesno", "en")
    assert parse_with("Answer: Yes, because the trial showed it.", yes_no).prediction.answer == "yes"
    assert parse_with("maybe.", yes_no).prediction.answer == "maybe"
    assert parse_with("答案：否", AnswerSpace("qa_yesno", "zh")).prediction.answer == "no"
    for text, key in [
        ("Answer: (c) Thiamine", "C"),
        ("The correct answer is B.", "B"),
        ("Thiamine deficiency.", "C"),
        ("答案：Ｅ", "E"),
        ("D", "D"),
    ]:
        result = parse_with(text, MC_SPEC)
        assert result.ok and result.prediction.answer == key, text


# -- predictions as records --------------------------------------------------------------------------


def test_prediction_to_record_for_cid_and_mc() -> None:
    gold = Record(id="1", document_id="1", dataset="cdr", language="en", task="re", text="Aspirin harms.")
    record = prediction_to_record(Prediction("re", relations=(("CID", "aspirin", "ulcer"),)), gold)
    assert [(entity.id, entity.type, entity.text, entity.offsets) for entity in record.entities] == [
        ("P1", "Chemical", "aspirin", None),
        ("P2", "Disease", "ulcer", None),
    ]
    assert record.relations == [Relation(type="CID", head_id="P1", tail_id="P2")]
    question = Record(
        id="q",
        document_id="q",
        dataset="m",
        language="en",
        task="qa_mc",
        question="?",
        choices=CHOICES,
        answer="C",
    )
    assert prediction_to_record(Prediction("qa_mc", answer="B"), question).answer == "B"
    assert prediction_to_record(Prediction("qa_mc"), question).answer is None


# -- round trips on generated records ----------------------------------------------------------------

SPECIAL = ";；,，[]【】\\:：()（） \n\t"
item_texts = st.text(
    st.characters(exclude_categories=("Cs", "Cc")) | st.sampled_from(list(SPECIAL)), min_size=1, max_size=14
).filter(lambda text: bool(canonical_text(text)))
LANGUAGES = st.sampled_from(["en", "zh"])


def _with_mentions(mentions: list[tuple[str, str]]) -> tuple[str, list[Entity]]:
    """A passage holding each (type, text) mention, with exact offsets."""
    text, entities = "", []
    for number, (entity_type, mention) in enumerate(mentions, start=1):
        text += "… "
        entities.append(
            Entity(
                id=f"T{number}",
                type=entity_type,
                text=mention,
                offsets=[(len(text), len(text) + len(mention))],
            )
        )
        text += mention
    return text + " …", entities


def round_trip(record: Record, space: AnswerSpace) -> None:
    gold = gold_prediction(record, space)
    text = serialise(gold, space)
    result = parse_with(text, space)
    assert result.ok, (text, result.problems)
    assert result.prediction == gold, text
    rebuilt = prediction_to_record(
        result.prediction, record
    )  # a valid unified record carrying the prediction
    assert gold_prediction(rebuilt, space) == gold


@settings(max_examples=150, deadline=None)
@given(
    language=LANGUAGES,
    types=st.sampled_from([("Chemical", "Disease"), CMEEE_TYPES, ("Gene",)]),
    data=st.data(),
)
def test_ner_round_trip_generated(language: str, types: tuple[str, ...], data: st.DataObject) -> None:
    mentions = data.draw(st.lists(st.tuples(st.sampled_from(types), item_texts), max_size=6))
    text, entities = _with_mentions(mentions)
    record = Record(
        id="r", document_id="r", dataset="d", language=language, task="ner", text=text, entities=entities
    )
    round_trip(record, AnswerSpace("ner", language, entity_types=types))  # type: ignore[arg-type]


type_names = (
    st.text(st.sampled_from("abcXYZ -基因蛋白"), min_size=1, max_size=8)
    .map(canonical_text)
    .filter(lambda name: bool(name) and not name.startswith("-") and name not in CMEEE_TYPE_NAMES.values())
)


@settings(max_examples=80, deadline=None)
@given(language=LANGUAGES, data=st.data())
def test_ner_round_trip_open_vocabulary(language: str, data: st.DataObject) -> None:
    types = data.draw(st.lists(type_names, min_size=1, max_size=3, unique=True))
    mentions = data.draw(st.lists(st.tuples(st.sampled_from(types), item_texts), min_size=1, max_size=5))
    text, entities = _with_mentions(mentions)
    record = Record(
        id="r", document_id="r", dataset="d", language=language, task="ner", text=text, entities=entities
    )  # type: ignore[arg-type]
    round_trip(record, AnswerSpace("ner", language))  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    language=LANGUAGES,
    relation_types=st.sampled_from([("CID",), CMEIE_PREDICATES[:6], ("treats", "causes")]),
    data=st.data(),
)
def test_re_round_trip_generated(language: str, relation_types: tuple[str, ...], data: st.DataObject) -> None:
    mentions = data.draw(
        st.lists(st.tuples(st.sampled_from(["Chemical", "Disease"]), item_texts), min_size=2, max_size=6)
    )
    text, entities = _with_mentions(mentions)
    pairs = data.draw(
        st.lists(
            st.tuples(st.sampled_from(relation_types), st.sampled_from(entities), st.sampled_from(entities)),
            max_size=5,
        )
    )
    relations = [Relation(type=kind, head_id=head.id, tail_id=tail.id) for kind, head, tail in pairs]
    record = Record(
        id="r",
        document_id="r",
        dataset="d",
        language=language,
        task="re",
        text=text,
        entities=entities,
        relations=relations,
    )  # type: ignore[arg-type]
    round_trip(record, AnswerSpace("re", language, relation_types=relation_types))  # type: ignore[arg-type]


label_words = (
    st.text(st.sampled_from("abcdefgh 治疗方案;；"), min_size=1, max_size=10).map(canonical_text).filter(bool)
)


@settings(max_examples=150, deadline=None)
@given(language=LANGUAGES, data=st.data())
def test_label_round_trip_generated(language: str, data: st.DataObject) -> None:
    names = data.draw(st.sampled_from([HOC_LABELS, LITCOVID_TOPICS, KUAKE_QIC_LABELS, None]))
    task = data.draw(st.sampled_from(["tc", "tc_multilabel", "text_pair"]))
    pool = st.sampled_from(names) if names else label_words
    labels = data.draw(st.lists(pool, min_size=1, max_size=1 if task != "tc_multilabel" else 4, unique=True))
    if names is None:
        labels = [label for label in labels if label.casefold() not in ("none", "无")] or ["x"]
    record = Record(
        id="r", document_id="r", dataset="d", language=language, task=task, text="t", labels=labels
    )  # type: ignore[arg-type]
    round_trip(record, AnswerSpace(task, language, label_names=names))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(language=LANGUAGES, data=st.data())
def test_qa_round_trip_generated(language: str, data: st.DataObject) -> None:
    task = data.draw(
        st.sampled_from(["qa_yesno", "qa_mc", "qa_open", "translation", "generation", "dialogue"])
    )
    choices = None
    if task == "qa_yesno":
        answer = data.draw(st.sampled_from(["yes", "no", "maybe"]))
    elif task == "qa_mc":
        keys = "ABCDE"[: data.draw(st.integers(min_value=2, max_value=5))]
        choices = {key: data.draw(item_texts) for key in keys}
        answer = data.draw(st.sampled_from(list(keys)))
    else:
        answer = data.draw(st.text(min_size=1, max_size=40).filter(str.strip))
    turns = (
        [Turn(role="user", content="q"), Turn(role="assistant", content=answer)] if task == "dialogue" else []
    )
    record = Record(
        id="r", document_id="r", dataset="d", language=language, task=task, question="q", choices=choices,  # type: ignore[arg-type]
        answer=None if task == "dialogue" else answer, turns=turns,
    )  # fmt: skip
    round_trip(record, AnswerSpace(task, language, choices=choices))  # type: ignore[arg-type]


def test_parse_output_uses_the_entry_vocabulary() -> None:
    from taiyi_ray.config.data import DatasetEntry
    from taiyi_ray.data.answers import gold_for, parse_output

    entry = DatasetEntry(name="hoc", format="hoc_tsv", uri="x", language="en", task="tc_multilabel")
    gold = Record(
        id="s", document_id="1", dataset="hoc", language="en", task="tc_multilabel", text="t", labels=["none"]
    )
    assert gold_for(gold, entry) == Prediction("tc_multilabel", labels=("none",))
    result = parse_output("Labels: Inducing angiogenesis; nothing else", gold, entry)
    assert result.ok and result.prediction.labels == ("inducing angiogenesis",)


# -- sts scores --------------------------------------------------------------------------------------


def test_sts_format_en_and_zh() -> None:
    assert serialise(Prediction("sts", answer="3.2"), AnswerSpace("sts", "en")) == "Score: 3.2"
    assert serialise(Prediction("sts", answer="0.75"), AnswerSpace("sts", "zh")) == "分数：0.75"


def test_sts_parse_is_tolerant_but_never_guesses_between_numbers() -> None:
    read = {
        "Score: 3.2": "3.2",
        "分数：３.５": "3.5",
        "**Score**: 0.75.": "0.75",
        "4": "4",
        "The two sentences are nearly identical.\nSimilarity: 3.8 (out of 4)": "3.8",
        "相似度：2": "2",
    }
    for text, answer in read.items():
        result = parse(text, "sts", "en")
        assert result.ok and result.prediction.answer == answer, text
    for text in ("The similarity is 2.5 out of 4", "quite similar", ""):
        result = parse(text, "sts", "zh")
        assert not result.ok and result.prediction.answer is None and result.problems, text


@settings(max_examples=100, deadline=None)
@given(language=LANGUAGES, whole=st.integers(0, 5), tenths=st.sampled_from(["", ".0", ".25", ".5", ".8"]))
def test_sts_round_trip_generated(language: str, whole: int, tenths: str) -> None:
    record = Record(
        id="r", document_id="r", dataset="d", language=language, task="sts", text="a", context="b",  # type: ignore[arg-type]
        answer=f"{whole}{tenths}",
    )  # fmt: skip
    round_trip(record, AnswerSpace("sts", language))  # type: ignore[arg-type]
