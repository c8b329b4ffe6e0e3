"""English biomedical question answering: PubMedQA and MedQA (USMLE).

`pubmedqa`: PubMedQA PQA-L/PQA-A JSON (one object keyed by PMID).

Each value has `QUESTION`, `CONTEXTS` (list of abstract sections; `LABELS` names them), and
`final_decision` (yes/no/maybe; absent in the unlabelled PQA-U, which is read with `unlabelled`). One yes/no/maybe record per PMID; the
context is the sections joined by newlines (the conclusion, `LONG_ANSWER`, is not part of the context,
as in the official reasoning-required setting). Document id = PMID, so decontamination finds the same
article in `ori_pqal.json` and in the test set.

`medqa_jsonl`: MedQA multiple-choice JSONL (USMLE in English, MCMLE in Chinese; 4 or 5 options).

Each line: `question`, `options` (letter -> text), `answer_idx` (the letter), `answer` (its text),
`meta_info`. One qa_mc record per line; the answer is the letter and must name an option, and when the
line also gives the answer text it must equal that option's text. The files hold no ids: a question's
id is `{file}:{n}` (1-based among non-blank lines). The language is the catalogue's (MCMLE: zh).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.answers import YES_NO_MAYBE
from taiyi_ray.data.formats._io import bad, build_record, label_or_none, records_from_json_lines, require_str
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record


def convert_pubmedqa(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one qa_yesno record per PMID of a PubMedQA JSON object."""
    with source.storage.open(source.uri, "rb") as handle:
        for item in iter_json_items(handle):
            if item.error:
                yield bad(source, item.line, None, item.error, item.raw)
                return
            if item.key is None:
                yield bad(
                    source,
                    item.line,
                    None,
                    "expected a JSON object keyed by PMID, got an array item",
                    item.raw,
                )
                continue
            try:
                fields = _pubmedqa_fields(source, item.key, item.value)
            except ValueError as error:
                yield bad(source, item.line, item.key, str(error), item.raw)
                continue
            yield build_record(source, item.line, item.raw, fields)


def _pubmedqa_fields(source: Source, pmid: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(
            f"expected an object with QUESTION, CONTEXTS and final_decision, got {type(value).__name__}"
        )
    question = require_str(value.get("QUESTION"), "QUESTION")
    contexts = value.get("CONTEXTS")
    if not isinstance(contexts, list) or not all(isinstance(part, str) for part in contexts):
        raise ValueError(f"CONTEXTS must be a list of strings, got {contexts!r:.80}")
    answer = label_or_none(source, value.get("final_decision"), "final_decision")
    if answer is not None and answer not in YES_NO_MAYBE:
        raise ValueError(f"final_decision {answer!r} is not one of {list(YES_NO_MAYBE)}")
    return {
        "id": pmid,
        "document_id": pmid,
        "task": "qa_yesno",
        "question": question,
        "context": "\n".join(part.strip() for part in contexts),
        "answer": answer,
    }


def convert_medqa_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multiple-choice record per line."""
    return records_from_json_lines(
        source, lambda value, record_id: _medqa_jsonl_fields(source, value, record_id)
    )


def _medqa_jsonl_fields(source: Source, value: Any, record_id: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(
            f"expected an object with question, options and answer_idx, got {type(value).__name__}"
        )
    question = require_str(value.get("question"), "question")
    options = value.get("options")
    if not isinstance(options, dict) or not options:
        raise ValueError(f"'options' must be a non-empty object letter -> text, got {options!r:.80}")
    choices = {str(key).strip(): require_str(text, f"options.{key}").strip() for key, text in options.items()}
    answer = label_or_none(source, value.get("answer_idx"), "answer_idx")
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
