"""`POST /v1/tasks/{ner,re,ee,tc,qa}`: biomedical questions in, structured answers out.

The request becomes a unified `Record` plus a `DatasetEntry` naming its answer space, so the prompt is
built by the data package's own bilingual templates (`instruct.build_prompt`, the ones the model was
trained on) and the output is read by its own parser (`answers.parse_with`), exactly as evaluation does.
Entities come back with every character span where their text occurs in the input (matched verbatim,
whitespace-insensitively, then case-insensitively); a generated mention that is not in the input has no
spans. Events come back the same way: the trigger's spans, and each argument's (an entity's text, or a
nested event's trigger with its `event_type`).

Default answer spaces when a request names none: NER en `Chemical, Disease` (BC5CDR), zh the CMeEE types;
RE en `CID` (BC5CDR), zh the CMeIE predicates; EE the nine GENIA (BioNLP-ST 2011 GE) event types. Classification needs its `labels`.

Closed questions (yes/no/maybe, a choice among keys, one label of a closed set) are decoded under a grammar
of their whole answers (`answer_grammar`, constrained decoding in the engine), so their answers always parse.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from taiyi_ray.config.data import DatasetEntry, Language, Task
from taiyi_ray.data.answers import (
    GENIA_EVENT_TYPES,
    YES_NO_MAYBE,
    EventAnswer,
    ParseResult,
    Prediction,
    answer_space,
    parse_with,
    serialise,
)
from taiyi_ray.data.schema import Record
from taiyi_ray.serve.errors import APIError
from taiyi_ray.serve.schemas import Integer, PositiveInteger, Seed

TASKS: tuple[str, ...] = ("ner", "re", "ee", "tc", "qa")
_DEFAULT_FORMATS: dict[tuple[str, Language], str] = {
    ("ner", "en"): "pubtator_cdr",
    ("ner", "zh"): "cmeee",
    ("re", "en"): "pubtator_cdr",
    ("re", "zh"): "cmeie",
}


class _TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no "true"/1 for booleans, 1.0 for integers

    model: str | None = Field(None, description="A served model id; default: the base model.")
    language: Language = Field("en", description="Language of the input, and of the instruction.")
    max_tokens: PositiveInteger | None = Field(
        None, description="At most serve.max_tokens_limit; default serve.default_max_tokens."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 (default) is greedy decoding.")
    seed: Seed | None = None
    template_seed: Integer = Field(0, description="Picks one of the task's instruction paraphrases.")


class NERRequest(_TaskRequest):
    text: str = Field(min_length=1)
    entity_types: list[str] | None = Field(
        None, min_length=1, description="Default: BC5CDR (en) / CMeEE (zh) types."
    )


class RERequest(_TaskRequest):
    text: str = Field(min_length=1)
    relation_types: list[str] | None = Field(
        None, min_length=1, description="Default: CID (en) / CMeIE (zh)."
    )


class EERequest(_TaskRequest):
    text: str = Field(min_length=1)
    event_types: list[str] | None = Field(
        None, min_length=1, description="Default: the GENIA event types (Phosphorylation, Binding, ...)."
    )


class TCRequest(_TaskRequest):
    text: str = Field(min_length=1)
    labels: list[str] = Field(min_length=1, description="The label set to choose from.")
    multi_label: bool = Field(False, description="Several labels may apply (HoC, LitCovid).")


class QARequest(_TaskRequest):
    model_config = ConfigDict(  # the rule `unified_task` enforces, stated in the schema too
        json_schema_extra={
            "if": {"properties": {"qa_type": {"const": "multiple_choice"}}, "required": ["qa_type"]},
            "then": {"properties": {"choices": {"type": "object"}}, "required": ["choices"]},
        }
    )

    question: str = Field(min_length=1)
    choices: dict[str, str] | None = Field(
        None, min_length=2, description='Options by letter, e.g. {"A": "..."}.'
    )
    context: str | None = Field(None, description="A passage the answer is based on (PubMedQA).")
    qa_type: Literal["multiple_choice", "yes_no", "open"] | None = Field(
        None, description="Default: multiple_choice with choices, else open."
    )


TaskRequest = NERRequest | RERequest | EERequest | TCRequest | QARequest


class EntityOut(BaseModel):
    type: str
    text: str
    offsets: list[tuple[int, int]] = Field(
        description="[start, end) character spans of the text in the input."
    )


class RelationOut(BaseModel):
    type: str
    head: str
    tail: str


class EventArgumentOut(BaseModel):
    role: str
    text: str = Field(description="An entity's text, or the trigger of the nested event named by event_type.")
    event_type: str | None = Field(None, description="Set when the argument is itself an event.")
    offsets: list[tuple[int, int]] = Field(description="[start, end) spans of the text in the input.")


class EventOut(BaseModel):
    type: str
    trigger: str
    offsets: list[tuple[int, int]] = Field(description="[start, end) spans of the trigger in the input.")
    arguments: list[EventArgumentOut]


class TaskResponse(BaseModel):
    task: str
    model: str
    language: Language
    entities: list[EntityOut] | None = None
    relations: list[RelationOut] | None = None
    events: list[EventOut] | None = None
    labels: list[str] | None = None
    answer: str | None = None
    answer_text: str | None = Field(None, description="The chosen option's text (multiple choice).")
    parsed: bool = Field(description="False when no answer could be read from the generation (see problems).")
    problems: list[str]
    raw: str = Field(description="The generated text, as the model wrote it.")
    prompt: str = Field(description="The instruction sent to the model.")
    finish_reason: str
    usage: dict[str, int]


def unified_task(task: str, request: TaskRequest) -> Task:
    if isinstance(request, TCRequest):
        return "tc_multilabel" if request.multi_label else "tc"
    if isinstance(request, QARequest):
        kind = request.qa_type or ("multiple_choice" if request.choices else "open")
        if kind == "multiple_choice" and not request.choices:
            raise APIError(400, "qa_type multiple_choice needs choices, got none", param="choices")
        return {"multiple_choice": "qa_mc", "yes_no": "qa_yesno", "open": "qa_open"}[kind]  # type: ignore[return-value]
    return task  # type: ignore[return-value]


def build_record(task: str, request: TaskRequest) -> tuple[Record, DatasetEntry]:
    """The request as a unified record and the catalogue entry giving its answer space."""
    unified = unified_task(task, request)
    language = request.language
    entry = DatasetEntry(
        name="serve",
        format=_DEFAULT_FORMATS.get((task, language), "unified_jsonl"),
        uri="request",
        language=language,
        task=unified,
        entity_types=getattr(request, "entity_types", None),
        relation_types=getattr(request, "relation_types", None),
        label_names=getattr(request, "labels", None),
        event_types=(request.event_types or list(GENIA_EVENT_TYPES))
        if isinstance(request, EERequest)
        else None,
    )
    fields: dict[str, object] = {"text": getattr(request, "text", "")}
    if isinstance(request, QARequest):
        choices = request.choices if unified == "qa_mc" else None
        fields = {"question": request.question, "choices": choices, "context": request.context}
    record = Record(
        id="request", document_id="request", dataset="serve", language=language, task=unified, **fields
    )
    return record, entry


def prompt_field(request: TaskRequest) -> str:
    """The request field to blame when the prompt does not fit the context."""
    if isinstance(request, QARequest):
        return "context" if request.context else "question"
    return "text"


def find_spans(text: str, mention: str) -> list[tuple[int, int]]:
    """[start, end) spans where `mention` occurs in `text`: verbatim (any run of whitespace matching any
    other), else case-insensitively; non-overlapping, in order."""
    words = mention.split()
    if not words:
        return []
    pattern = r"\s+".join(re.escape(word) for word in words)
    for flags in (0, re.IGNORECASE):
        spans = [(match.start(), match.end()) for match in re.finditer(pattern, text, flags)]
        if spans:
            return spans
    return []


def structure(
    task: str, request: TaskRequest, record: Record, entry: DatasetEntry, raw: str
) -> dict[str, object]:
    """The structured fields of the answer parsed from `raw` (entities/relations/labels/answer + parse status)."""
    result: ParseResult = parse_with(raw, answer_space(record, entry))
    prediction = result.prediction
    fields: dict[str, object] = {"parsed": result.ok, "problems": list(result.problems)}
    if task == "ner":
        fields["entities"] = [
            EntityOut(type=entity_type, text=text, offsets=find_spans(record.text, text))
            for entity_type, text in prediction.entities
        ]
    elif task == "re":
        fields["relations"] = [
            RelationOut(type=kind, head=head, tail=tail) for kind, head, tail in prediction.relations
        ]
    elif task == "ee":
        fields["events"] = [_event_out(event, record.text) for event in prediction.events]
    elif task == "tc":
        fields["labels"] = list(prediction.labels)
    else:
        fields["answer"] = prediction.answer
        if record.choices and prediction.answer in record.choices:
            fields["answer_text"] = record.choices[prediction.answer]
    return fields


def _event_out(event: EventAnswer, text: str) -> EventOut:
    arguments = [
        EventArgumentOut(
            role=argument.role,
            text=argument.text,
            event_type=argument.event_type or None,
            offsets=find_spans(text, argument.text),
        )
        for argument in event.arguments
    ]
    return EventOut(
        type=event.type, trigger=event.trigger, offsets=find_spans(text, event.trigger), arguments=arguments
    )


_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$#&-~")


def answer_grammar(record: Record, entry: DatasetEntry) -> str | None:
    """A regular expression of every whole answer to a closed question (a yes/no/maybe question, a choice
    among keys, one label of a closed set), written as the model was trained to answer, so constrained
    decoding makes the answer always parse; None for open answers (entities, relations, events, several
    labels, free text), which the parser reads leniently."""
    space = answer_space(record, entry)
    if space.task == "qa_yesno":
        answers = [Prediction("qa_yesno", answer=answer) for answer in YES_NO_MAYBE]
    elif space.task == "qa_mc" and space.choices:
        answers = [Prediction("qa_mc", answer=key) for key in space.choices]
    elif space.task == "tc" and space.label_names:
        answers = [Prediction("tc", labels=(label,)) for label in space.label_names]
    else:
        return None
    return "(" + "|".join(_literal(serialise(answer, space)) for answer in answers) + ")"


def _literal(text: str) -> str:
    """`text` as a regular expression matching only itself (outlines-core's regex syntax)."""
    return "".join("\\" + character if character in _REGEX_SPECIAL else character for character in text)
