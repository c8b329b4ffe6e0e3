"""Gold answers as the text a model learns to write, and free model output parsed back into predictions.

The answer format, per task (English / Chinese data):

- ner: one line per entity type, in the order the prompt lists the types, `None` / `无` for a type
  with no mention. Types are the source's (Chemical, Disease); CMeEE codes are written as Chinese
  words (dis -> 疾病, sym -> 临床表现, ...) and parsed back to the codes.
      Chemical: famotidine; cimetidine            疾病：SARS；肺炎
      Disease: None                               身体：无
- re: one line per relation type that has pairs; `None` / `无` when there is no pair at all.
      chemical-induced disease: [famotidine, delirium]
      临床表现：[小细胞肺癌，咳嗽]；[小细胞肺癌，咯血]
- ee: one line per event, `Type: trigger | Role: argument; Role: argument` (`None` / `无` for no event);
  an argument that is itself an event (BioNLP nesting) is written `Type(trigger)`, Chinese `Type（trigger）`.
      Positive_regulation: induces | Theme: Phosphorylation(phosphorylation); Cause: TNF
- tc and text_pair `Label: X` / `类别：X`; tc_multilabel `Labels: a; b` / `类别：a；b`.
- qa_yesno `Answer: yes` / `答案：是`; qa_mc `Answer: B. option text` / `答案：B. 选项`.
- sts `Score: 3.2` / `分数：3.2` (the similarity score as written in the gold, a decimal string).
- qa_open, translation, generation, dialogue: the answer text itself.

Separators inside items (real mentions contain `；` `;` `,` `[` `]`): a backslash makes the next character
literal. `serialise` puts one before every character that is structural for the item kind — `;` `；` in
entity and label items; also `,` `，` `[` `]` `【` `】` inside relation pairs; `|` `｜` in triggers, and
a closing bracket ending an entity argument — and before the backslash itself; an item that reads as a none-word (`None`) is written `\\None`. The parser splits only on
unescaped characters and removes the escapes, so `parse(serialise(gold)) == gold` for any texts.
Items are compared in canonical form (outer whitespace dropped, inner runs of whitespace made one space,
`taiyi_ray.data.answers.text.canonical_text`): an answer line cannot carry a mention's outer spaces.

The parser is tolerant of what generators emit: either colon and separator width, extra spaces, bullets
and markdown around type names, repeated items (de-duplicated), a missing type line (no mention of that
type), trailing text after the answer lines (ignored), a single-type answer without its type line, and
label/option text in place of a letter, a bare number for a score (read only when it is the only number). When nothing can be read it says so (`ParseResult.ok` False,
with the reason), and evaluation counts the item as unparsed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import taiyi_ray.data.answers.text as answer_text
from taiyi_ray.config.data import Language, Task
from taiyi_ray.data.answers.vocabulary import (
    CMEEE_TYPE_NAMES,
    RELATION_NAMES,
    YES_NO_MAYBE,
    YES_NO_MAYBE_ZH,
    entity_type_name,
    relation_type_name,
)

LABEL_TASKS: tuple[Task, ...] = ("tc", "tc_multilabel", "text_pair")
FREE_TEXT_TASKS: tuple[Task, ...] = ("qa_open", "translation", "generation", "dialogue")
PARSED_TASKS: tuple[Task, ...] = (
    "ner", "re", "ee", *LABEL_TASKS, "qa_yesno", "qa_mc", "sts", *FREE_TEXT_TASKS,
)  # fmt: skip
"""The tasks `parse_with` reads; any other task is refused (ValueError) rather than read as free text."""
_PREFIX = {
    "answer": {"en": "Answer", "zh": "答案"},
    "label": {"en": "Label", "zh": "类别"},
    "labels": {"en": "Labels", "zh": "类别"},
    "score": {"en": "Score", "zh": "分数"},
}
_NONE = {"en": "None", "zh": "无"}
_ITEM_JOIN = {"en": "; ", "zh": "；"}
_PAIR_JOIN = {"en": ", ", "zh": "，"}
_COLON = {"en": ": ", "zh": "："}
_BAR = {"en": " | ", "zh": "｜"}
_BRACKETS = {"en": "()", "zh": "（）"}
_ANSWER_WORDS = frozenset(
    {"answer", "final answer", "the answer", "correct answer", "答案", "正确答案", "最终答案", "答"}
)
_LABEL_WORDS = frozenset(
    {"label", "labels", "category", "categories", "class", "classes", "topic", "topics", "hallmark",
     "hallmarks", "intent", "类别", "标签", "类型", "意图", "分类", "主题", "答案", "answer"}
)  # fmt: skip


class EventArgumentAnswer(NamedTuple):
    """An event argument in an answer: its role, and an entity's text, or a nested event's trigger when
    `event_type` (the nested event's type) is not empty."""

    role: str
    text: str
    event_type: str = ""


class EventAnswer(NamedTuple):
    """An event in an answer: its type, trigger text and arguments (in the order written)."""

    type: str
    trigger: str
    arguments: tuple[EventArgumentAnswer, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """A structured answer: what a gold record says, or what a model's output was parsed into.

    `entities` (type, text) and `relations` (type, head text, tail text) are de-duplicated and
    in canonical form, as are `events`; `labels` are label names; `answer` is a choice key, yes/no/maybe,
    or free text.
    """

    task: Task
    entities: tuple[tuple[str, str], ...] = ()
    relations: tuple[tuple[str, str, str], ...] = ()
    events: tuple[EventAnswer, ...] = ()
    labels: tuple[str, ...] = ()
    answer: str | None = None


@dataclass(frozen=True)
class AnswerSpace:
    """The answer space of one item: what the prompt offered and the parser may accept.

    A vocabulary left None is open (any type/label is read as written). `choices` are the options of
    a multiple-choice question (key -> text).
    """

    task: Task
    language: Language
    entity_types: tuple[str, ...] | None = None
    relation_types: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    choices: Mapping[str, str] | None = None
    event_types: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ParseResult:
    """`prediction` read from the text; `ok` False when no answer could be read (`problems` say why)."""

    prediction: Prediction
    ok: bool
    problems: tuple[str, ...] = field(default_factory=tuple)


# -- serialise ---------------------------------------------------------------------------------------


def serialise(prediction: Prediction, space: AnswerSpace) -> str:
    """The answer text for a prediction (gold or parsed) under `space` (see the module docstring)."""
    task, language = space.task, space.language
    if task == "ner":
        return _serialise_entities(prediction, space)
    if task == "re":
        return _serialise_relations(prediction, space)
    if task == "ee":
        lines = [_event_line(event, language) for event in prediction.events]
        return "\n".join(lines) if lines else _NONE[language]
    if task in LABEL_TASKS:
        prefix = _PREFIX["labels" if task == "tc_multilabel" else "label"][language]
        known = set(space.label_names or ())
        items = [
            answer_text.escape(label, answer_text.LABEL_SPECIAL, guard_none=label not in known)
            for label in prediction.labels
        ]
        return prefix + _COLON[language] + (_ITEM_JOIN[language].join(items) if items else _NONE[language])
    if task == "qa_yesno":
        answer = prediction.answer or ""
        shown = YES_NO_MAYBE_ZH.get(answer, answer) if language == "zh" else answer
        return _PREFIX["answer"][language] + _COLON[language] + shown
    if task == "sts":
        return _PREFIX["score"][language] + _COLON[language] + (prediction.answer or "").strip()
    if task == "qa_mc":
        key = prediction.answer or ""
        option = (space.choices or {}).get(key)
        shown = f"{key}. {option}" if option is not None else key
        return _PREFIX["answer"][language] + _COLON[language] + shown
    return (prediction.answer or "").strip()


def _serialise_entities(prediction: Prediction, space: AnswerSpace) -> str:
    language = space.language
    by_type: dict[str, list[str]] = {entity_type: [] for entity_type in space.entity_types or ()}
    for entity_type, text in prediction.entities:
        by_type.setdefault(entity_type, []).append(answer_text.escape(text, answer_text.ENTITY_SPECIAL))
    if not by_type:
        return _NONE[language]
    lines = []
    for entity_type, items in by_type.items():
        shown = _ITEM_JOIN[language].join(items) if items else _NONE[language]
        lines.append(entity_type_name(entity_type, language) + _COLON[language] + shown)
    return "\n".join(lines)


def _serialise_relations(prediction: Prediction, space: AnswerSpace) -> str:
    language = space.language
    by_type: dict[str, list[str]] = {}
    for relation_type, head, tail in prediction.relations:
        pair = (
            answer_text.escape(head, answer_text.PAIR_ITEM_SPECIAL)
            + _PAIR_JOIN[language]
            + answer_text.escape(tail, answer_text.PAIR_ITEM_SPECIAL)
        )
        by_type.setdefault(relation_type, []).append(f"[{pair}]")
    if not by_type:
        return _NONE[language]
    lines = [
        relation_type_name(relation_type, language) + _COLON[language] + _ITEM_JOIN[language].join(pairs)
        for relation_type, pairs in by_type.items()
    ]
    return "\n".join(lines)


def _event_line(event: EventAnswer, language: Language) -> str:
    line = event.type + _COLON[language] + answer_text.escape(event.trigger, answer_text.TRIGGER_SPECIAL)
    arguments = [
        answer_text.write_argument(*argument, colon=_COLON[language], brackets=_BRACKETS[language])
        for argument in event.arguments
    ]
    return line + _BAR[language] + _ITEM_JOIN[language].join(arguments) if arguments else line


# -- parse -------------------------------------------------------------------------------------------


def parse(
    text: str,
    task: Task,
    language: Language,
    *,
    entity_types: Sequence[str] | None = None,
    relation_types: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    choices: Mapping[str, str] | None = None,
    event_types: Sequence[str] | None = None,
) -> ParseResult:
    """Read a model's output for `task` back into a `Prediction` (see the module docstring)."""
    space = AnswerSpace(
        task=task,
        language=language,
        entity_types=tuple(entity_types) if entity_types is not None else None,
        relation_types=tuple(relation_types) if relation_types is not None else None,
        label_names=tuple(label_names) if label_names is not None else None,
        choices=choices,
        event_types=tuple(event_types) if event_types is not None else None,
    )
    return parse_with(text, space)


def parse_with(text: str, space: AnswerSpace) -> ParseResult:
    """`parse` with the answer space given as one `AnswerSpace`."""
    if space.task == "ner":
        return _parse_entities(text, space)
    if space.task == "re":
        return _parse_relations(text, space)
    if space.task == "ee":
        return _parse_events(text, space)
    if space.task in LABEL_TASKS:
        return _parse_labels(text, space)
    if space.task == "qa_yesno":
        return _parse_yes_no(text, space)
    if space.task == "qa_mc":
        return _parse_choice(text, space)
    if space.task == "sts":
        return _parse_score(text)
    if space.task not in FREE_TEXT_TASKS:
        raise ValueError(f"task {space.task!r} has no answer parser; parsed tasks: {list(PARSED_TASKS)}")
    answer = text.strip()
    if not answer:
        return ParseResult(Prediction(space.task), False, ("the output is empty",))
    return ParseResult(Prediction(space.task, answer=answer), True)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _type_lookup(names: Sequence[str] | None, language: Language, entities: bool) -> dict[str, str]:
    """{label_key(name): type} for the types offered, under their own and their display names.

    With no types offered, the display names of the known vocabularies (CMeEE codes, CID) still map
    back to their codes, and any other label is read as written (see `_resolve`).
    """
    display = entity_type_name if entities else relation_type_name
    known = names if names is not None else tuple(CMEEE_TYPE_NAMES) + tuple(RELATION_NAMES)
    pairs = [(name, name) for name in known]
    pairs += [(display(name, language), name) for name in known]
    pairs += [(display(name, "en" if language == "zh" else "zh"), name) for name in known]
    return answer_text.name_lookup(pairs)


def _resolve(label: str, lookup: dict[str, str], open_vocabulary: bool) -> str | None:
    """The type a line's label names, or None when it names none the prompt offered."""
    found = lookup.get(answer_text.label_key(label))
    if found is not None or not open_vocabulary:
        return found
    cleaned = answer_text.clean_label(label)
    return cleaned if cleaned and len(cleaned) <= 60 and not any(c in cleaned for c in "[]【】") else None


def _typed_lines(
    text: str, lookup: dict[str, str], open_vocabulary: bool
) -> tuple[list[tuple[str, str]], list[str]]:
    """(type, rest of the line) for each line labelled with a type offered; a problem for each other line."""
    typed, problems = [], []
    for line in _lines(text):
        split = answer_text.split_label(line)
        found = _resolve(split[0], lookup, open_vocabulary) if split else None
        if split is None or found is None:
            problems.append(f"ignored line {line.strip()[:60]!r}")
        else:
            typed.append((found, split[1]))
    return typed, problems


def _parse_entities(text: str, space: AnswerSpace) -> ParseResult:
    lookup = _type_lookup(space.entity_types, space.language, entities=True)
    found: dict[tuple[str, str], None] = {}
    typed, problems = _typed_lines(text, lookup, space.entity_types is None)
    for entity_type, rest in typed:
        _add_items(found, entity_type, rest)
    if not typed:
        if answer_text.is_none_word(text):
            return ParseResult(Prediction("ner"), True)
        lines = _lines(text)
        if space.entity_types is not None and len(space.entity_types) == 1 and lines:
            _add_items(found, space.entity_types[0], lines[0])  # a single-type answer without its type line
            return ParseResult(
                Prediction("ner", entities=tuple(found)), True, ("no type line; read as the only type",)
            )
        return ParseResult(
            Prediction("ner"), False, ("no line of the form 'Type: mention; mention'", *problems[:3])
        )
    return ParseResult(Prediction("ner", entities=tuple(found)), True, tuple(problems))


def _add_items(found: dict[tuple[str, str], None], entity_type: str, rest: str) -> None:
    for piece in answer_text.split_unescaped(rest, answer_text.ITEM_SEPARATORS):
        if not piece.strip() or answer_text.is_none_word(piece):
            continue
        item = answer_text.strip_item(piece)
        if item:
            found.setdefault((entity_type, item), None)


def _parse_relations(text: str, space: AnswerSpace) -> ParseResult:
    lookup = _type_lookup(space.relation_types, space.language, entities=False)
    found: dict[tuple[str, str, str], None] = {}
    typed, problems = _typed_lines(text, lookup, space.relation_types is None)
    for relation_type, rest in typed:
        problems += _add_pairs(found, relation_type, rest)
    if not typed:
        if answer_text.is_none_word(text):
            return ParseResult(Prediction("re"), True)
        if (
            space.relation_types is not None
            and len(space.relation_types) == 1
            and answer_text.find_pairs(text)[0]
        ):
            problems += _add_pairs(found, space.relation_types[0], text)
            return ParseResult(
                Prediction("re", relations=tuple(found)), True, ("no relation-type line", *problems)
            )
        return ParseResult(
            Prediction("re"), False, ("no line of the form 'relation: [head, tail]'", *problems[:3])
        )
    return ParseResult(Prediction("re", relations=tuple(found)), True, tuple(problems))


def _add_pairs(found: dict[tuple[str, str, str], None], relation_type: str, rest: str) -> list[str]:
    pairs, problems = answer_text.find_pairs(rest)
    for head, tail in pairs:
        head_text, tail_text = answer_text.strip_item(head), answer_text.strip_item(tail)
        if head_text and tail_text:
            found.setdefault((relation_type, head_text, tail_text), None)
    if not pairs and not answer_text.is_none_word(rest):
        problems.append(f"no [head, tail] pair in {rest.strip()[:60]!r}")
    return problems


def _parse_events(text: str, space: AnswerSpace) -> ParseResult:
    lookup = answer_text.name_lookup((name, name) for name in space.event_types or ())
    typed, problems = _typed_lines(text, lookup, space.event_types is None)
    found: dict[EventAnswer, None] = {}
    for event_type, rest in typed:
        if answer_text.is_none_word(rest):
            continue  # `Type: None`: no event of the type
        trigger, arguments, trouble = answer_text.read_event(rest)
        problems += trouble
        kept = tuple(dict.fromkeys(EventArgumentAnswer(*argument) for argument in arguments))
        found.setdefault(EventAnswer(event_type, trigger, kept), None)
    if not typed:
        if answer_text.is_none_word(text):
            return ParseResult(Prediction("ee"), True)
        return ParseResult(
            Prediction("ee"), False, ("no line 'Type: trigger | Role: argument'", *problems[:3])
        )
    return ParseResult(Prediction("ee", events=tuple(found)), True, tuple(problems))


def _parse_labels(text: str, space: AnswerSpace) -> ParseResult:
    segment = answer_text.answer_segment(text, _LABEL_WORDS)
    single = space.task != "tc_multilabel"
    if space.label_names is None:
        first_line = next(iter(_lines(segment)), "")
        pieces = (
            answer_text.strip_item(piece)
            for piece in answer_text.split_unescaped(first_line, answer_text.ITEM_SEPARATORS)
        )
        labels = tuple(
            dict.fromkeys(piece for piece in pieces if piece and not answer_text.is_none_word(piece))
        )
        ok = bool(labels) or answer_text.is_none_word(segment)
        prediction = Prediction(space.task, labels=labels[:1] if single else labels)
        return ParseResult(prediction, ok, () if ok else ("no label found",))
    found, leftovers = answer_text.match_names(answer_text.unescape(segment), space.label_names)
    problems = tuple(f"not a known label: {piece!r}" for piece in leftovers[:3])
    if not found:
        if answer_text.is_none_word(segment) and "none" not in {
            name.casefold() for name in space.label_names
        }:
            return ParseResult(Prediction(space.task), True)
        return ParseResult(
            Prediction(space.task),
            False,
            (f"none of the labels {list(space.label_names)[:12]} found", *problems),
        )
    labels = tuple(dict.fromkeys(found))
    return ParseResult(Prediction(space.task, labels=labels[:1] if single else labels), True, problems)


_YES_NO = re.compile(r"\b(yes|no|maybe)\b")
_YES_NO_ZH = {value: key for key, value in YES_NO_MAYBE_ZH.items()} | {"可能": "maybe", "不是": "no"}


def _parse_yes_no(text: str, space: AnswerSpace) -> ParseResult:
    segment = unicodedata.normalize("NFKC", answer_text.answer_segment(text, _ANSWER_WORDS)).casefold()
    match = _YES_NO.search(segment)
    candidates = [(match.start(), match.group(1))] if match else []
    for word, answer in sorted(_YES_NO_ZH.items(), key=lambda pair: -len(pair[0])):
        position = segment.find(word)
        if position >= 0:
            candidates.append((position, answer))
    if not candidates:
        return ParseResult(Prediction("qa_yesno"), False, (f"no {'/'.join(YES_NO_MAYBE)} in the output",))
    return ParseResult(Prediction("qa_yesno", answer=min(candidates)[1]), True)


_LEADING_LETTER = re.compile(r"^[\s(（\[【*]*([A-Za-z])(?=$|[\s.．、:：)）\]】*,，])")
_ANSWER_IS = re.compile(
    r"(?:answer\s+is|answer\s*:|option|答案[是为]?|选择?|选项)\s*[:：]?\s*[(（\[【*]*([A-Za-z])(?![A-Za-z])",
    re.IGNORECASE,
)


def _parse_choice(text: str, space: AnswerSpace) -> ParseResult:
    choices = space.choices or {}
    segment = unicodedata.normalize("NFKC", answer_text.answer_segment(text, _ANSWER_WORDS))
    for match in (_LEADING_LETTER.match(segment), _ANSWER_IS.search(unicodedata.normalize("NFKC", text))):
        if match and match.group(1).upper() in choices:
            return ParseResult(Prediction("qa_mc", answer=match.group(1).upper()), True)
    folded = answer_text.canonical_text(segment).casefold()
    for key, option in sorted(choices.items(), key=lambda pair: -len(pair[1])):
        needle = answer_text.canonical_text(unicodedata.normalize("NFKC", option)).casefold()
        if needle and needle in folded:
            return ParseResult(Prediction("qa_mc", answer=key), True, ("answered with the option text",))
    return ParseResult(
        Prediction("qa_mc"), False, (f"no option letter among {sorted(choices)} and no option text",)
    )


_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_SCORE_WORDS = frozenset(
    {
        "score",
        "similarity",
        "similarity score",
        "answer",
        "分数",
        "得分",
        "评分",
        "相似度",
        "相似度分数",
        "答案",
    }
)


def _parse_score(text: str) -> ParseResult:
    """The first number after a `Score:`-like prefix, or the only number of an output without one."""
    segment = answer_text.answer_segment(text, _SCORE_WORDS)
    numbers = _NUMBER.findall(unicodedata.normalize("NFKC", segment))
    if numbers and (segment != text or len(numbers) == 1):
        return ParseResult(Prediction("sts", answer=numbers[0]), True)
    reason = "several numbers and no 'Score:' line" if numbers else "no number in the output"
    return ParseResult(Prediction("sts"), False, (reason,))
