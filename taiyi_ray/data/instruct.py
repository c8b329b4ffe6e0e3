"""Records -> instruction conversations, with bilingual templates kept as data files in the package.

`build_samples` makes the training conversations of a record (user prompt + assistant gold answer);
`build_prompt` makes the conversation without the answer, for evaluation and serving; `gold_answer`
is the serialised gold (`taiyi_ray.data.answers`). Templates live in `taiyi_ray/data/templates/{task}.yaml`,
several paraphrases per task and language (PromptCBLUE style; Taiyi used about 20 per task); the one
used is chosen deterministically from (seed, dataset, record id), so a rerun builds the same samples.

Long inputs (policy in `taiyi_ray.data.windows`): the passage is bounded by the entry's
`max_input_chars` (default `DEFAULT_MAX_INPUT_CHARS` per language). For training, longer NER/RE/EE
documents are split into windows (one sample each); longer QA contexts and classification texts are
cut. `build_prompt` never windows (an evaluation item must be scored whole) but cuts QA contexts and
classification texts the same way; an NER/RE/EE evaluation prompt carries the whole document.

Record fields per task: ner/re `text`; ee `text` (+ `entities` and `events`); tc/tc_multilabel `text` + `labels`; text_pair `text` and
`context` (the second text) + `labels`; qa_yesno `question` + `context` + `answer`; qa_mc `question` +
`choices` + `answer` (a key); qa_open `question` (+ `context`) + `answer`; translation `text` (in the
record's language) + `answer` (in the other language); sts `text` + `context` (the second text) +
`answer` (the score); generation `text` (the input) + `answer` (the target text); dialogue `turns`.

Entry options the prompt reads: sts `score_min` / `score_max` (the scale offered, default 0 to 4, the
BIOSSES scale); generation `task_description` (what to write, in the entry's language; default a
sentence naming summaries, reports, titles and structured text).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from taiyi_ray.config.data import DatasetEntry, Language, Task
from taiyi_ray.data.answers import (
    AnswerSpace,
    answer_space,
    entity_type_name,
    gold_prediction,
    relation_type_name,
    serialise,
)
from taiyi_ray.data.schema import InstructionSample, Message, Record
from taiyi_ray.data.windows import Windows, cut, window_record

DEFAULT_MAX_INPUT_CHARS: dict[Language, int] = {"en": 2500, "zh": 700}
"""Characters of passage per prompt: about 600-700 Qwen2 tokens either way, which leaves room for the
template and the answer within Taiyi's 1024-token samples."""

TEMPLATE_TASKS: tuple[Task, ...] = (
    "ner", "re", "ee", "tc", "tc_multilabel", "qa_yesno", "qa_mc", "qa_open", "translation", "text_pair",
    "sts", "generation",
)  # fmt: skip
PLACEHOLDERS: dict[Task, frozenset[str]] = {
    "ner": frozenset({"text", "entity_types"}),
    "re": frozenset({"text", "relation_types"}),
    "ee": frozenset({"text", "event_types"}),
    "tc": frozenset({"text", "labels"}),
    "tc_multilabel": frozenset({"text", "labels"}),
    "qa_yesno": frozenset({"question", "context"}),
    "qa_mc": frozenset({"question", "choices"}),
    "qa_open": frozenset({"question", "context_block"}),
    "translation": frozenset({"text", "source_language", "target_language"}),
    "text_pair": frozenset({"text", "text_b", "labels"}),
    "sts": frozenset({"text", "text_b", "score_range"}),
    "generation": frozenset({"text", "task_description"}),
}
DEFAULT_SCORE_RANGE = (0.0, 4.0)
"""The similarity scale an sts prompt offers unless the entry's options say `score_min` / `score_max`."""
_RANGE_JOIN = {"en": " to ", "zh": "到"}
_TASK_DESCRIPTION = {
    "en": "Write the text the input calls for (such as its summary, report, title or structured form).",
    "zh": "请根据输入写出所需的文本（如摘要、报告、标题或结构化内容）。",
}
_LIST_JOIN = {"en": ", ", "zh": "、"}
_LABEL_JOIN = {"en": "; ", "zh": "、"}
_LANGUAGE_NAMES: dict[Language, dict[Language, str]] = {
    "en": {"en": "English", "zh": "Chinese"},
    "zh": {"en": "英文", "zh": "中文"},
}
_CONTEXT_LABEL = {"en": "Context", "zh": "背景"}


@dataclass(frozen=True)
class BuildCounts:
    """What building one record's samples did: samples made, and whether input was windowed or cut."""

    samples: int
    windowed: bool = False
    truncated: bool = False
    dropped_relations: int = 0
    dropped_events: int = 0
    unlabelled: bool = False


@cache
def templates(task: Task, language: Language) -> tuple[str, ...]:
    """The prompt templates of a task in a language, from the package's YAML file (read once)."""
    if task not in TEMPLATE_TASKS:
        raise ValueError(
            f"task {task!r} has no templates (dialogue uses its own turns); expected one of {TEMPLATE_TASKS}"
        )
    text = resources.files("taiyi_ray.data").joinpath("templates", f"{task}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    found = data.get(language) if isinstance(data, dict) else None
    if not isinstance(found, list) or not found or not all(isinstance(item, str) for item in found):
        raise ValueError(f"templates/{task}.yaml: expected a non-empty list of strings under {language!r}")
    return tuple(found)


def choose_template(task: Task, language: Language, seed: int, key: str) -> str:
    """The template for `key` (dataset/record id): a stable hash of (seed, key), not Python's `hash`."""
    options = templates(task, language)
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def max_input_chars(entry: DatasetEntry, language: Language) -> int:
    return entry.max_input_chars or DEFAULT_MAX_INPUT_CHARS[language]


def gold_answer(record: Record, entry: DatasetEntry) -> str:
    """The answer text the model should produce for `record` (parses back to the gold prediction)."""
    space = answer_space(record, entry)
    return serialise(gold_prediction(record, space), space)


def build_prompt(record: Record, entry: DatasetEntry, seed: int) -> list[Message]:
    """The conversation up to (not including) the answer: for evaluation and serving."""
    if record.task == "dialogue":
        turns = list(record.turns)
        while turns and turns[-1].role == "assistant":
            turns.pop()
        return [Message(role=turn.role, content=turn.content) for turn in turns]
    prompt, _ = _render(record, entry, answer_space(record, entry), seed)
    return [Message(role="user", content=prompt)]


def build_samples(record: Record, entry: DatasetEntry, seed: int) -> list[InstructionSample]:
    """The training conversations of `record`: one per window for long NER/RE documents, else one."""
    return build_samples_counted(record, entry, seed)[0]


def build_samples_counted(
    record: Record, entry: DatasetEntry, seed: int
) -> tuple[list[InstructionSample], BuildCounts]:
    """`build_samples`, and what it did (for the `data prepare` table).

    A record without gold (an unlabelled test file's question or query) makes no sample: there is no
    answer to learn. NER/RE records without mentions do make one (the answer is `None`).
    """
    if _unlabelled(record):
        return [], BuildCounts(samples=0, unlabelled=True)
    if record.task == "dialogue":
        sample = _dialogue_sample(record)
        return ([sample] if sample else []), BuildCounts(samples=1 if sample else 0)
    limit = max_input_chars(entry, record.language)
    windows = window_record(record, limit) if record.task in ("ner", "re", "ee") else Windows([record])
    pieces = windows.records
    samples, truncated = [], False
    for piece in pieces:
        space = answer_space(piece, entry)
        prompt, was_cut = _render(piece, entry, space, seed)
        truncated |= was_cut
        answer = serialise(gold_prediction(piece, space), space)
        samples.append(
            _sample(
                piece,
                record,
                [Message(role="user", content=prompt), Message(role="assistant", content=answer)],
            )
        )
    counts = BuildCounts(
        samples=len(samples),
        windowed=windows.windowed,
        truncated=truncated,
        dropped_relations=windows.dropped_relations,
        dropped_events=windows.dropped_events,
    )
    return samples, counts


def _unlabelled(record: Record) -> bool:
    if record.task in ("tc", "tc_multilabel", "text_pair"):
        return not record.labels
    if record.task in ("qa_yesno", "qa_mc", "qa_open", "translation", "sts", "generation"):
        return record.answer is None or not record.answer.strip()
    return False


def _sample(piece: Record, record: Record, messages: list[Message]) -> InstructionSample:
    return InstructionSample(
        id=f"{record.dataset}/{piece.id}",
        source_id=record.id,
        dataset=record.dataset,
        task=record.task,
        language=record.language,
        messages=messages,
    )


def _dialogue_sample(record: Record) -> InstructionSample | None:
    turns = list(record.turns)
    while turns and turns[-1].role != "assistant":
        turns.pop()  # a trailing user turn has no answer to learn
    if not any(turn.role == "assistant" for turn in turns) or not any(turn.role == "user" for turn in turns):
        return None
    return _sample(record, record, [Message(role=turn.role, content=turn.content) for turn in turns])


def _render(record: Record, entry: DatasetEntry, space: AnswerSpace, seed: int) -> tuple[str, bool]:
    """The user prompt of `record` and whether its passage/context was cut to the entry's limit."""
    values, was_cut = _values(record, space, max_input_chars(entry, record.language))
    values |= _entry_values(record, entry)
    template = choose_template(record.task, record.language, seed, f"{record.dataset}\x00{record.id}")
    return template.format_map(values), was_cut


def _values(record: Record, space: AnswerSpace, limit: int) -> tuple[dict[str, Any], bool]:
    """The placeholder values of the record's template, and whether a passage was cut."""
    language, task = record.language, record.task
    if task == "ner":
        types = _LIST_JOIN[language].join(
            entity_type_name(name, language) for name in space.entity_types or ()
        )
        return {"text": record.text, "entity_types": types}, False
    if task == "re":
        types = _LIST_JOIN[language].join(
            relation_type_name(name, language) for name in space.relation_types or ()
        )
        return {"text": record.text, "relation_types": types}, False
    if task == "ee":
        return {"text": record.text, "event_types": _LIST_JOIN[language].join(space.event_types or ())}, False
    if task in ("tc", "tc_multilabel", "text_pair", "sts"):
        return _label_values(record, space, limit)
    if task == "generation":
        text, was_cut = cut(record.text, limit)
        return {"text": text}, was_cut
    if task == "translation":
        names = _LANGUAGE_NAMES[language]
        other: Language = "zh" if language == "en" else "en"
        text, was_cut = cut(record.text, limit)
        return {"text": text, "source_language": names[language], "target_language": names[other]}, was_cut
    return _question_values(record, limit)


def _label_values(record: Record, space: AnswerSpace, limit: int) -> tuple[dict[str, Any], bool]:
    text, was_cut = cut(record.text, limit)
    values = {"text": text, "labels": _LABEL_JOIN[record.language].join(space.label_names or ())}
    if record.task in ("text_pair", "sts"):
        values["text_b"], cut_b = cut(record.context or "", limit)
        was_cut |= cut_b
    return values, was_cut


def _question_values(record: Record, limit: int) -> tuple[dict[str, Any], bool]:
    question = record.question or ""
    choices = "\n".join(f"{key}. {text}" for key, text in (record.choices or {}).items())
    budget = max(limit - len(question) - len(choices), limit // 4)
    context, was_cut = cut(record.context or "", budget)
    colon = "：" if record.language == "zh" else ": "
    block = f"{_CONTEXT_LABEL[record.language]}{colon}{context}\n\n" if context else ""
    return {"question": question, "choices": choices, "context": context, "context_block": block}, was_cut


def _entry_values(record: Record, entry: DatasetEntry) -> dict[str, str]:
    """Placeholder values the entry's options give: an sts scale, a generation task's description."""
    if record.task == "sts":
        low = _option_number(entry, "score_min", DEFAULT_SCORE_RANGE[0])
        high = _option_number(entry, "score_max", DEFAULT_SCORE_RANGE[1])
        if not low < high:
            raise ValueError(
                f"dataset {entry.name!r}: options score_min {low:g} is not below score_max {high:g}"
            )
        return {"score_range": f"{low:g}{_RANGE_JOIN[record.language]}{high:g}"}
    if record.task == "generation":
        description = entry.options.get("task_description", _TASK_DESCRIPTION[record.language])
        if not isinstance(description, str) or not description.strip():
            raise ValueError(
                f"dataset {entry.name!r}: options task_description {description!r} is not a sentence"
            )
        return {"task_description": description.strip()}
    return {}


def _option_number(entry: DatasetEntry, name: str, default: float) -> float:
    value = entry.options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"dataset {entry.name!r}: options {name} {value!r} is not a number (expected e.g. 4)"
        )
    return float(value)
