"""Instruction and conversation data in the layouts other SFT tools read: ShareGPT, Alpaca and taiyi-ray's own unified JSONL.

`sharegpt_jsonl`: multi-turn dialogues, one JSON object per line (ShareGPT or OpenAI messages).

`{"id"?, "conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}` (ShareGPT) or
`{"messages": [{"role": "user"|"assistant"|"system", "content": ...}]}`. One dialogue record per line;
a dialogue needs at least one assistant turn to learn from. Taiyi mixed ~590k such dialogues into
stage 2; bring your own (they are not in ../shared/data).

`alpaca_json`: single-turn instruction data in the Alpaca layout (a JSON array, or JSON Lines).

Each item: `instruction`, optional `input` (appended to the instruction after a blank line), `output`,
optional `system`, and optional `history` (earlier `[user, assistant]` pairs, as LLaMA-Factory writes
it). One dialogue record per item: the turns are the history, then instruction(+input) -> output.
A file starting with `[` is read as one streamed array, anything else as JSON Lines.

`taiyi_instruction`: Taiyi's released instruction data (DUTIR-BioNLP/Taiyi-LLM,
`Taiyi_Instruction_Data_Example.jsonl`), one conversation per line: `{"conversation_id", "dataset",
"category", "language", "conversation": [{"human": ..., "assistant": ...}, ...]}`. Each element of
`conversation` is one exchange, a user turn then its assistant reply; an exchange without both (a
conversation that does not alternate or ends without an assistant reply) is a bad record naming the
turn. `conversation_id` counts within its `dataset`, so the record id is `{dataset}:{conversation_id}`.
An item whose `language` is `en` or `zh` keeps it; others (`en-zh` for translation) take the source's.
`category` (NER, RE, TC, MT-en2zh, ...) is not kept: the records are dialogues.

`huatuo_sft_jsonl`: HuatuoGPT-sft-data-v1 (FreedomIntelligence, `HuatuoGPT_sft_data_v1.jsonl`; Chinese).

Each line is `{"data": ["问：...", "答：...", ...]}`: alternating user (`问：`) and assistant (`答：`)
utterances, the layout public loaders of this file read (`data["data"][0].replace("问：", "")`; no real
file is here). One dialogue record per line with the prefixes stripped (full-width or ASCII colon); a
line that does not alternate 问/答 starting with 问, or ends on a question, is a bad record.

`meddialog_txt`: MedDialog's raw text files (UCSD-AI4H/Medical-Dialogue-System; en and zh).

Layout as parsed by the Hugging Face `medical_dialog` loader (huggingface/datasets
`datasets/medical_dialog/medical_dialog.py`; no real file is here): dialogues one after another, each
opening with an `id=N` line, then its URL, a `Description` section and a `Dialogue` section in which a
speaker line (`Patient:` / `Doctor:` in English, `病人:` / `医生:` in Chinese) is followed by the
utterance's lines. One dialogue record per `Dialogue` section: patient turns are the user's, doctor
turns the assistant's; consecutive lines of one speaker are joined by a newline. The description is not
a turn (the dialogue's first patient turn restates it). A dialogue without a doctor turn is a bad record.

`unified_jsonl`: records already in the unified schema (`taiyi_ray.data.schema.Record`), one per line.

This is how a user adds any of the ~140 datasets Taiyi used: write a small converter of your own that
emits this JSONL (or add a module here and register it in `FORMATS`), then list the file in a
catalogue with `format: unified_jsonl`. Each line is validated like every converter's output; the
records keep their own dataset, split and language.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from taiyi_ray.data.formats._io import (
    bad,
    build_record,
    iter_json_lines,
    iter_lines,
    local_id,
    records_from_json_lines,
    require_object,
    require_str,
    validation_reason,
)
from taiyi_ray.data.formats._jsonstream import iter_json_items
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename

ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
}


def convert_sharegpt_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per line (its own `id` when it has one, else `{file}:{n}`)."""
    return records_from_json_lines(source, _sharegpt_jsonl_fields)


def _sharegpt_jsonl_fields(value: Any, local: str) -> dict[str, Any]:
    record_id = str(value["id"]) if isinstance(value, dict) and value.get("id") is not None else local
    return {"id": record_id, "document_id": record_id, "task": "dialogue", "turns": dialogue_turns(value)}


def dialogue_turns(value: Any) -> list[dict[str, str]]:
    """The turns of a ShareGPT / OpenAI-messages object; raises ValueError when it has no assistant turn."""
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'conversations' or 'messages', got {type(value).__name__}")
    if "conversations" in value:
        raw_turns, role_key, content_key = value["conversations"], "from", "value"
    elif "messages" in value:
        raw_turns, role_key, content_key = value["messages"], "role", "content"
    else:
        raise ValueError(f"expected a 'conversations' or 'messages' list, got keys {sorted(value)}")
    if not isinstance(raw_turns, list):
        raise ValueError(f"'{'conversations' if role_key == 'from' else 'messages'}' must be a list")
    turns = []
    for number, turn in enumerate(raw_turns, start=1):
        if not isinstance(turn, dict) or not isinstance(turn.get(content_key), str):
            raise ValueError(f"turn {number} must be an object with a string {content_key!r}")
        role = ROLES.get(str(turn.get(role_key, "")).lower())
        if role is None:
            raise ValueError(
                f"turn {number}: unknown role {turn.get(role_key)!r}, expected one of {sorted(ROLES)}"
            )
        turns.append({"role": role, "content": turn[content_key]})
    if not any(turn["role"] == "assistant" for turn in turns):
        raise ValueError("the dialogue has no assistant turn to learn from")
    return turns


def convert_alpaca_json(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per instruction item."""
    for number, line, value, error, raw in _alpaca_json_items(source):
        record_id = local_id(source, number)
        if error:
            yield bad(source, line, record_id, error, raw)
            continue
        try:
            fields = {
                "id": record_id,
                "document_id": record_id,
                "task": "dialogue",
                "turns": _alpaca_json_turns(value),
            }
        except ValueError as problem:
            yield bad(source, line, record_id, str(problem), raw)
            continue
        yield build_record(source, line, raw, fields)


def _alpaca_json_items(source: Source) -> Iterator[tuple[int, int, Any, str | None, str]]:
    with source.storage.open(source.uri, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"["):
        with source.storage.open(source.uri, "rb") as handle:
            for item in iter_json_items(handle):
                yield item.index + 1, item.line, item.value, item.error, item.raw
                if item.error:
                    return
    else:
        for entry in iter_json_lines(source):
            yield entry.number, entry.line.number, entry.value, entry.error, entry.line.text


def _alpaca_json_turns(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object with 'instruction' and 'output', got {type(value).__name__}")
    instruction = require_str(value.get("instruction"), "instruction")
    extra = value.get("input") or ""
    if not isinstance(extra, str):
        raise ValueError(f"'input' must be a string, got {type(extra).__name__}")
    output = require_str(value.get("output"), "output")
    turns: list[dict[str, str]] = []
    system = value.get("system")
    if isinstance(system, str) and system.strip():
        turns.append({"role": "system", "content": system})
    for number, pair in enumerate(value.get("history") or [], start=1):
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise ValueError(f"history item {number} must be a [user, assistant] pair of strings")
        turns += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    turns += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    return turns


def convert_taiyi_instruction(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per conversation of Taiyi's instruction JSONL."""
    return records_from_json_lines(source, _taiyi_fields)


def _taiyi_fields(value: Any, local: str) -> dict[str, Any]:
    item = require_object(value, "'conversation_id' and 'conversation'")
    conversation_id, dataset = item.get("conversation_id"), item.get("dataset")
    record_id = (
        local
        if conversation_id is None
        else f"{dataset}:{conversation_id}"
        if dataset
        else str(conversation_id)
    )
    exchanges = item.get("conversation")
    if not isinstance(exchanges, list) or not exchanges:
        raise ValueError(f"'conversation' must be a non-empty list of exchanges, got {exchanges!r}"[:300])
    turns = []
    for number, exchange in enumerate(exchanges, start=1):
        if not isinstance(exchange, dict) or set(exchange) != {"human", "assistant"}:
            found = sorted(exchange) if isinstance(exchange, dict) else type(exchange).__name__
            raise ValueError(
                f"conversation turn {number}: expected a 'human' and an 'assistant' text, got {found}"
            )
        turns += [
            {"role": "user", "content": require_str(exchange["human"], f"turn {number} human")},
            {"role": "assistant", "content": require_str(exchange["assistant"], f"turn {number} assistant")},
        ]
    fields = {"id": record_id, "document_id": record_id, "task": "dialogue", "turns": turns}
    language = item.get("language")
    return {**fields, "language": language} if language in ("en", "zh") else fields


HUATUO_PREFIXES = (("问：", "问:"), ("答：", "答:"))


def convert_huatuo_sft_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per HuatuoGPT-sft line."""
    return records_from_json_lines(source, _huatuo_sft_fields)


def _huatuo_sft_fields(value: Any, local: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise ValueError("expected an object with a 'data' list of 问/答 utterances")
    turns = []
    for number, utterance in enumerate(value["data"]):
        text = require_str(utterance, f"data[{number}]").strip()
        prefixes = HUATUO_PREFIXES[number % 2]
        if not text.startswith(prefixes):
            raise ValueError(
                f"data[{number}] must start with {prefixes[0]!r}: the utterances do not alternate 问/答"
            )
        role = "user" if number % 2 == 0 else "assistant"
        turns.append({"role": role, "content": text[len(prefixes[0]) :].strip()})
    if not turns or turns[-1]["role"] != "assistant":
        raise ValueError("the dialogue must end with an answer (答：), got a question or nothing")
    return {"id": local, "document_id": local, "task": "dialogue", "turns": turns}


MEDDIALOG_SPEAKERS = {"patient": "user", "doctor": "assistant", "病人": "user", "医生": "assistant"}


@dataclass
class _Dialogue:
    """A MedDialog dialogue being read: its id, first line, and the (role, lines) turns so far."""

    dialogue_id: str
    line: int
    raw: list[str] = field(default_factory=list)
    turns: list[tuple[str, list[str]]] = field(default_factory=list)
    in_dialogue: bool = False


def convert_meddialog_txt(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one dialogue record per `id=` block of a MedDialog text file."""
    current: _Dialogue | None = None
    for line in iter_lines(source):
        if line.error:
            yield bad(source, line.number, current.dialogue_id if current else None, line.error)
            continue
        text = line.text.strip()
        if text.startswith("id=") or text.startswith("id ="):
            if current is not None:
                yield _meddialog_record(source, current)
            current = _Dialogue(text.split("=", 1)[1].strip() or local_id(source, line.number), line.number)
        if current is not None:
            current.raw.append(line.text)
            _meddialog_line(current, text)
    if current is not None:
        yield _meddialog_record(source, current)


def _meddialog_line(dialogue: _Dialogue, text: str) -> None:
    if text == "Dialogue":
        dialogue.in_dialogue = True
        return
    if not dialogue.in_dialogue or not text:
        return
    role = MEDDIALOG_SPEAKERS.get(text.rstrip(":：").strip().lower()) if text.endswith((":", "：")) else None
    if role is not None:
        if not dialogue.turns or dialogue.turns[-1][0] != role:
            dialogue.turns.append((role, []))
    elif dialogue.turns:
        dialogue.turns[-1][1].append(text)


def _meddialog_record(source: Source, dialogue: _Dialogue) -> Record | BadRecord:
    raw = "\n".join(dialogue.raw)
    turns = [{"role": role, "content": "\n".join(lines)} for role, lines in dialogue.turns if lines]
    if not any(turn["role"] == "assistant" for turn in turns):
        return bad(source, dialogue.line, dialogue.dialogue_id, "the dialogue has no doctor turn", raw)
    record_id = f"{basename(source.uri)}:{dialogue.dialogue_id}"
    fields = {"id": record_id, "document_id": record_id, "task": "dialogue", "turns": turns}
    return build_record(source, dialogue.line, raw, fields)


def convert_unified_jsonl(source: Source) -> Iterator[Record | BadRecord]:
    """Yield the records of a unified JSONL file, validated."""
    for item in iter_json_lines(source):
        if item.error:
            yield bad(source, item.line.number, None, item.error, item.line.text)
            continue
        record_id = item.value.get("id") if isinstance(item.value, dict) else None
        try:
            yield Record.model_validate(item.value)
        except ValidationError as error:
            yield bad(
                source,
                item.line.number,
                str(record_id) if record_id else None,
                validation_reason(error),
                item.line.text,
            )
