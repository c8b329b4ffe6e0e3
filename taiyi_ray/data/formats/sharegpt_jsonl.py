"""`sharegpt_jsonl`: multi-turn dialogues, one JSON object per line (ShareGPT or OpenAI messages).

`{"id"?, "conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}` (ShareGPT) or
`{"messages": [{"role": "user"|"assistant"|"system", "content": ...}]}`. One dialogue record per line;
a dialogue needs at least one assistant turn to learn from. Taiyi mixed ~590k such dialogues into
stage 2; bring your own (they are not in ../shared/data).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import records_from_json_lines
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record

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
    return records_from_json_lines(source, _fields)


def _fields(value: Any, local: str) -> dict[str, Any]:
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
