"""The answer format: gold answers written as the text a model learns, and model output parsed back.

Each task has one answer format (per language): NER one line per entity type (`Chemical: a; b`, `None`
for a type with no mention), RE one line per relation type with `[head, tail]` pairs, classification
`Label: X`, yes/no and multiple choice `Answer: ...`, free-text tasks the answer itself. A backslash makes
a separator inside an item literal, so `parse(serialise(gold)) == gold`; the parser is tolerant of what
generators emit and says why when it cannot read an output (`ParseResult.ok` False).

Modules, one idea each:

- `format`: the format itself. `Prediction` (an answer as data; events as `EventAnswer`s),
  `AnswerSpace` (the answer space: task, language, types, labels, choices, event types), `serialise`
  (prediction -> text), `parse` / `parse_with` (text -> `ParseResult`).
- `text`: character-level rules the format round-trips by: escaping, splitting on unescaped
  separators, none-words, label clean-up, `canonical_text` (the form items are compared in), and
  finding answers in free output (`answer_segment`, `match_names`).
- `vocabulary`: the source formats' label vocabularies (entity types, relation types, class labels)
  and the display names codes are written as (CMeEE `dis` -> 疾病).
- `records`: between unified `Record`s and answers: a record's answer space (`answer_space`), its gold
  prediction (`gold_prediction`, `gold_for`), output parsed for a record (`parse_output`), and a
  prediction written back as a record (`prediction_to_record`).

Callers outside the package import from here; the modules import each other by full module path.
"""

from __future__ import annotations

from taiyi_ray.data.answers.format import (
    FREE_TEXT_TASKS,
    LABEL_TASKS,
    PARSED_TASKS,
    AnswerSpace,
    EventAnswer,
    EventArgumentAnswer,
    ParseResult,
    Prediction,
    parse,
    parse_with,
    serialise,
)
from taiyi_ray.data.answers.records import (
    answer_space,
    gold_for,
    gold_prediction,
    parse_output,
    prediction_to_record,
)
from taiyi_ray.data.answers.text import canonical_text
from taiyi_ray.data.answers.vocabulary import (
    CDEE_TENDENCIES,
    CHIP_CTC_LABELS,
    CHIP_STS_LABELS,
    CMEEE_TYPE_NAMES,
    CMEEE_TYPES,
    CMEIE_PREDICATES,
    CMID_4CLASS_LABELS,
    DEFAULT_ENTITY_TYPES,
    GENIA_EVENT_TYPES,
    HOC_HALLMARKS,
    HOC_LABELS,
    HOC_NONE,
    IMCS_DIALOGUE_ACTS,
    IMCS_ENTITY_TYPES,
    IMCS_SYMPTOM_STATUS,
    KUAKE_QIC_LABELS,
    KUAKE_QQR_LABELS,
    KUAKE_QTR_LABELS,
    LITCOVID_TOPICS,
    YES_NO_MAYBE,
    entity_type_name,
    relation_type_name,
)

__all__ = [
    "CDEE_TENDENCIES",
    "CHIP_CTC_LABELS",
    "CHIP_STS_LABELS",
    "CMEEE_TYPES",
    "CMEEE_TYPE_NAMES",
    "CMEIE_PREDICATES",
    "CMID_4CLASS_LABELS",
    "DEFAULT_ENTITY_TYPES",
    "FREE_TEXT_TASKS",
    "GENIA_EVENT_TYPES",
    "HOC_HALLMARKS",
    "HOC_LABELS",
    "HOC_NONE",
    "IMCS_DIALOGUE_ACTS",
    "IMCS_ENTITY_TYPES",
    "IMCS_SYMPTOM_STATUS",
    "KUAKE_QIC_LABELS",
    "KUAKE_QQR_LABELS",
    "KUAKE_QTR_LABELS",
    "LABEL_TASKS",
    "LITCOVID_TOPICS",
    "PARSED_TASKS",
    "YES_NO_MAYBE",
    "AnswerSpace",
    "EventAnswer",
    "EventArgumentAnswer",
    "ParseResult",
    "Prediction",
    "answer_space",
    "canonical_text",
    "entity_type_name",
    "gold_for",
    "gold_prediction",
    "parse",
    "parse_output",
    "parse_with",
    "prediction_to_record",
    "relation_type_name",
    "serialise",
]
