"""`medqa_jsonl`: MedQA multiple-choice JSONL (USMLE in English, MCMLE in Chinese; 4 or 5 options).

Each line: `question`, `options` (letter -> text), `answer_idx` (the letter), `answer` (its text),
`meta_info`. One qa_mc record per line; the answer is the letter and must name an option, and when the
line also gives the answer text it must equal that option's text. The files hold no ids: a question's
id is `{file}:{n}` (1-based among non-blank lines). The language is the catalogue's (MCMLE: zh).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import records_from_json_lines, require_str
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record


def convert_medqa_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multiple-choice record per line."""
    return records_from_json_lines(source, _fields)


def _fields(value: Any, record_id: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(
            f"expected an object with question, options and answer_idx, got {type(value).__name__}"
        )
    question = require_str(value.get("question"), "question")
    options = value.get("options")
    if not isinstance(options, dict) or not options:
        raise ValueError(f"'options' must be a non-empty object letter -> text, got {options!r:.80}")
    choices = {str(key).strip(): require_str(text, f"options.{key}").strip() for key, text in options.items()}
    answer = value.get("answer_idx")
    if answer is not None:
        answer = require_str(answer, "answer_idx").strip()
        if answer not in choices:
            raise ValueError(f"answer_idx {answer!r} is not one of the options {sorted(choices)}")
        text = value.get("answer")
        if isinstance(text, str) and text.strip() != choices[answer]:
            raise ValueError(f"answer text {text!r} does not match option {answer}: {choices[answer]!r}")
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "qa_mc",
        "question": question.strip(),
        "choices": choices,
        "answer": answer,
    }
