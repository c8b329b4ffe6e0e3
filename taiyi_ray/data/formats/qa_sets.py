"""Biomedical question answering: PubMedQA, MedQA (USMLE / MCMLE), MedMCQA and Huatuo-26M's QA sets.

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

`medmcqa_jsonl`: MedMCQA's own JSON Lines (`train.json`, `dev.json`, `test.json`; BigBIO has no loader).

Each line: `id`, `question`, `opa`..`opd`, `cop`, `choice_type`, `exp`, `subject_name`, `topic_name`.
Layout and `cop` base checked against the Hugging Face loader (huggingface/datasets
`datasets/medmcqa/medmcqa.py`, which yields `int(data["cop"]) - 1` and reads the test file as unlabelled):
in the distributed files `cop` is **1-4** (1 = opa). The Hub's parquet export stores it 0-3 (-1 on test);
read that with `options.cop_from_zero: true`. One qa_mc record per line, choices A-D, answer the letter;
`exp` (the explanation) is not kept. The record id is MedMCQA's `id`.

`huatuo_qa_jsonl`: Huatuo-26M's QA sets (FreedomIntelligence/huatuo_encyclopedia_qa,
huatuo_knowledge_graph_qa, huatuo_consultation_qa on the Hugging Face Hub; Chinese).

Each line is `{"questions": [[q, paraphrase, ...], ...], "answers": [a, ...]}`: group i of `questions`
holds paraphrases of one question answered by `answers[i]` (layout as read by public code that loads
these files, e.g. `example["questions"][0][0]` with `answers[0]`; no real file is here). One qa_open
record per group, asked with its **first** paraphrase: the others restate the same question and would
repeat the same answer as extra records. Ids `{file}:{n}` (`{file}:{n}.{i}` when a line has several
groups). The consultation set's `answers` are URLs of the source pages, not answer text (its inventory
entry says so); an answer that is a URL is refused.

`medical_dialogue_csv`: Toyhom/Chinese-medical-dialogue-data, one CSV per department (`Data_数据/IM_内科/
内科5000-33000.csv`, ...), columns `department,title,ask,answer` (the repository's README), encoded in
**GB18030** (read so by public loaders, e.g. xtuner's medical config `load_dataset('csv', ...,
encoding='GB18030')`; `options.encoding` overrides). One qa_open record per row, id `{file}:{n}`. The
question is the title and the ask joined by a newline: in this set the title is often the question and
the ask only the symptoms (`哪家医院能治胃反流` / `烧心，打隔，咳嗽低烧，以有4年多`), as the repository's own
script joins them too; the title alone when the ask is empty or `无` (no text, as xtuner's map function
reads it), the ask alone when it already contains the title. `department` is not kept.

`liveqa_xml`: TREC 2017 LiveQA medical task XML (abachaa/LiveQA_MedicalTask_TREC2017). Training files
(`TREC-2017-LiveQA-Medical-Train-1.xml`, `-2.xml`): `<NLM-QUESTION questionid=|qid=>` with `<SUBJECT>`,
`<MESSAGE>` and `<SUB-QUESTIONS><SUB-QUESTION>...<ANSWERS><ANSWER>`; the test file
(`TREC-2017-LiveQA-Medical-Test-Questions-w-summaries.xml`): `<NLM-QUESTION qid=>` with
`<Original-Question><SUBJECT><MESSAGE>` and `<ReferenceAnswers>` of `<RefAnswer>`/`<ReferenceAnswer>`
(both spellings occur) holding `<ANSWER>`. One qa_open record per NLM question (Taiyi counted questions:
446 train, 104 test), the question the subject and the message (as `joined_question`), the answer the
first answer of each sub-question joined by blank lines (a question with a treatment and a cause
sub-question asks both), or the test file's first reference answer; the other answers are alternatives
and not kept. Answer lines are stripped of the files' indentation. Ids are the question ids, unique
within a file (document id `{file}:{id}`). Streamed element by element; no line numbers (ElementTree
gives none), a bad question is named by its id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree

from taiyi_ray.data.answers import YES_NO_MAYBE
from taiyi_ray.data.formats._io import (
    bad,
    build_record,
    iter_json_lines,
    label_or_none,
    local_id,
    records_from_csv,
    records_from_json_lines,
    require_str,
)
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename


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


MEDMCQA_OPTIONS = {"A": "opa", "B": "opb", "C": "opc", "D": "opd"}


def convert_medmcqa_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multiple-choice record per MedMCQA line."""
    return records_from_json_lines(source, lambda value, local: _medmcqa_fields(source, value, local))


def _medmcqa_fields(source: Source, value: Any, local: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with question, opa..opd and cop, got {type(value).__name__}")
    record_id = str(value["id"]) if value.get("id") not in (None, "") else local
    choices = {letter: require_str(value.get(key), key).strip() for letter, key in MEDMCQA_OPTIONS.items()}
    cop = value.get("cop")
    cop = None if cop == -1 else label_or_none(source, cop, "cop")
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "qa_mc",
        "question": require_str(value.get("question"), "question").strip(),
        "choices": choices,
        "answer": None if cop is None else _medmcqa_letter(cop, bool(source.options.get("cop_from_zero"))),
    }


def _medmcqa_letter(cop: Any, from_zero: bool) -> str:
    """The option letter of `cop` (1-4 in the distributed files, 0-3 in the Hub's export)."""
    first = 0 if from_zero else 1
    if isinstance(cop, bool) or not isinstance(cop, int | str) or not str(cop).strip().isdigit():
        raise ValueError(f"cop must be an option number, got {cop!r}")
    index = int(cop) - first
    if not 0 <= index < len(MEDMCQA_OPTIONS):
        raise ValueError(f"cop {cop!r} is not an option number {first}-{first + 3}")
    return list(MEDMCQA_OPTIONS)[index]


def convert_huatuo_qa_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one open-answer record per question group of each line."""
    for item in iter_json_lines(source):
        record_id = local_id(source, item.number)
        pairs, problem = _huatuo_line(source, item.value, item.error)
        if problem is not None:
            yield bad(source, item.line.number, record_id, problem, item.line.text)
        for index, (question, answer) in enumerate(pairs, start=1):
            pair_id = record_id if len(pairs) == 1 else f"{record_id}.{index}"
            fields = {"id": pair_id, "document_id": pair_id, "task": "qa_open", "question": question}
            yield build_record(source, item.line.number, item.line.text, fields | {"answer": answer})


def _huatuo_line(
    source: Source, value: Any, error: str | None
) -> tuple[list[tuple[str, str | None]], str | None]:
    """A parsed line's (question, answer) pairs, or the reason it has none."""
    if error is not None:
        return [], error
    try:
        return _huatuo_pairs(source, value), None
    except ValueError as problem:
        return [], str(problem)


def _huatuo_pairs(source: Source, value: Any) -> list[tuple[str, str | None]]:
    """(first paraphrase, answer) per question group; raises ValueError naming the field."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'questions' and 'answers', got {type(value).__name__}")
    groups, answers = value.get("questions"), label_or_none(source, value.get("answers"), "answers")
    if not isinstance(groups, list) or not groups:
        raise ValueError(f"'questions' must be a non-empty list of paraphrase lists, got {groups!r:.80}")
    if answers is not None and (not isinstance(answers, list) or len(answers) != len(groups)):
        raise ValueError(f"'answers' must be a list with one answer per question group ({len(groups)})")
    pairs: list[tuple[str, str | None]] = []
    for index, group in enumerate(groups):
        paraphrases = group if isinstance(group, list) else [group]
        question = require_str(paraphrases[0] if paraphrases else None, f"questions[{index}][0]").strip()
        answer = None if answers is None else require_str(answers[index], f"answers[{index}]").strip()
        if answer is not None and answer.startswith(("http://", "https://")):
            raise ValueError(f"answers[{index}] is a URL, not an answer text: {answer[:80]!r}")
        pairs.append((question, answer))
    return pairs


MEDICAL_DIALOGUE_COLUMNS = ("title", "ask", "answer")
NO_TEXT = "无"  # what the Chinese medical dialogue CSVs write in an empty ask


def convert_medical_dialogue_csv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one open-answer record per row of a Chinese-medical-dialogue-data department CSV."""
    return records_from_csv(
        source,
        MEDICAL_DIALOGUE_COLUMNS,
        lambda row, local: _medical_dialogue_fields(source, row, local),
        encoding=str(source.options.get("encoding", "gb18030")),
    )


def _medical_dialogue_fields(source: Source, row: dict[str, str], local: str) -> dict[str, Any]:
    question = joined_question(row["title"], "" if row["ask"].strip() == NO_TEXT else row["ask"])
    if not question:
        raise ValueError("both title and ask are empty")
    answer = label_or_none(source, row["answer"].strip(), "answer")
    return {"id": local, "document_id": local, "task": "qa_open", "question": question, "answer": answer}


def joined_question(title: str, body: str) -> str:
    """A consumer question from its title (subject) and its text: both, one per line, unless the text
    already holds the title (then the text) or one of them is empty (then the other)."""
    title, body = title.strip(), body.strip()
    if not title or title in body:
        return body
    return f"{title}\n{body}" if body else title


def convert_liveqa_xml(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one open-answer record per NLM question of a TREC 2017 LiveQA medical XML file."""
    with source.storage.open(source.uri, "rb") as handle:
        try:
            for _, element in ElementTree.iterparse(handle):
                if element.tag == "NLM-QUESTION":
                    yield _liveqa_record(source, element)
                    element.clear()  # keep one question in memory
        except ElementTree.ParseError as error:
            yield bad(source, error.position[0], None, f"not well-formed XML: {error}")


def _liveqa_record(source: Source, element: ElementTree.Element) -> Record | BadRecord:
    question_id = element.get("questionid") or element.get("qid") or ""
    raw = ElementTree.tostring(element, encoding="unicode")
    try:
        fields = _liveqa_fields(source, element, question_id)
    except ValueError as error:
        return bad(source, None, question_id or None, str(error), raw)
    return build_record(source, None, raw, fields)


def _liveqa_fields(source: Source, element: ElementTree.Element, question_id: str) -> dict[str, Any]:
    if not question_id:
        raise ValueError("NLM-QUESTION has neither a questionid nor a qid attribute")
    original = element.find("Original-Question")
    holder = element if original is None else original
    question = joined_question(_xml_text(holder.find("SUBJECT")), _xml_text(holder.find("MESSAGE")))
    if not question:
        raise ValueError("both SUBJECT and MESSAGE are empty")
    sub_questions = element.findall("SUB-QUESTIONS/SUB-QUESTION")
    firsts = [sub.find("ANSWERS/ANSWER") for sub in sub_questions] or [
        element.find("ReferenceAnswers/*/ANSWER")
    ]
    answer = "\n\n".join(text for text in map(_xml_text, firsts) if text)
    document_id = f"{basename(source.uri)}:{question_id}"
    return {
        "id": question_id,
        "document_id": document_id,
        "task": "qa_open",
        "question": question,
        "answer": label_or_none(source, answer, "ANSWER"),
    }


def _xml_text(element: ElementTree.Element | None) -> str:
    """An element's text with each line stripped of the file's indentation, blank lines dropped."""
    if element is None:
        return ""
    lines = "".join(element.itertext()).splitlines()
    return "\n".join(line.strip() for line in lines if line.strip())
