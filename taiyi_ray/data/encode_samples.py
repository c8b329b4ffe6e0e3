"""Instruction samples -> token ids and labels, batched with the fast tokenizer (a Ray Data UDF).

The conversation is rendered to text once by the chat format, which also returns the character spans
of the answers (+ their end token). The whole text is tokenized in one call with offsets, and a token is
learned (label = its id) exactly when its characters lie inside an answer span; every other label is
-100. Tokenizing the whole text at once, rather than segment by segment, gives the same ids the model
sees at inference, where the prompt is tokenized in one piece too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from transformers import PreTrainedTokenizerFast

from taiyi_ray.data.chat_format import ChatFormat, get_chat_format
from taiyi_ray.data.schema import Message
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer
from taiyi_ray.storage import Storage

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

TOKENIZED_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("dataset", pa.string()),
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("num_tokens", pa.int32()),
        ("num_label_tokens", pa.int32()),
        ("truncated", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class TokenizedSample:
    sample_id: str
    dataset: str
    input_ids: np.ndarray
    labels: np.ndarray
    truncated: bool


def label_mask(offsets: Sequence[tuple[int, int]], answer_spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Boolean mask over tokens: True where the token's characters lie inside an answer span.

    `offsets` are [start, end) character offsets per token (fast tokenizer). A token that straddles a
    span edge would be a tokenization/format bug: it raises, never guesses. Vectorised per span (a
    conversation has few answers, a sample many tokens).
    """
    bounds = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = bounds[:, 0], bounds[:, 1]
    mask = np.zeros(len(bounds), dtype=bool)
    for span_start, span_end in answer_spans:
        mask |= (starts >= span_start) & (ends <= span_end) & (ends > starts)
        straddles = ((starts < span_start) & (span_start < ends)) | ((starts < span_end) & (span_end < ends))
        if straddles.any():
            index = int(np.flatnonzero(straddles)[0])
            raise ValueError(
                f"token at characters [{starts[index]}, {ends[index]}) straddles answer span [{span_start}, {span_end})"
            )
    return mask


def tokenize_conversations(
    tokenizer: PreTrainedTokenizerFast,
    chat_format: ChatFormat,
    conversations: Sequence[Sequence[Message]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, labels) per conversation, int32, not truncated."""
    rendered = [chat_format.render(messages) for messages in conversations]
    encoded = tokenizer(
        [text for text, _ in rendered],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
    )
    results = []
    for (_, spans), ids, offsets in zip(
        rendered, encoded["input_ids"], encoded["offset_mapping"], strict=True
    ):
        input_ids = np.asarray(ids, dtype=np.int32)
        labels = np.where(label_mask(offsets, spans), input_ids, IGNORE_INDEX).astype(np.int32)
        results.append((input_ids, labels))
    return results


class SampleTokenizer:
    """Ray Data `map_batches` UDF: InstructionSample rows (id, dataset, messages) -> tokenized rows.

    Over-long samples (more than `max_seq_len` tokens) are cut at `max_seq_len` ("truncate": the loss
    then misses the cut answer tail) or dropped ("drop"); a sample left with no answer token is dropped
    either way. Both are counted: `truncated` is a column, and dropped samples come back in `dropped_*`
    rows with zero tokens so the caller can count them without a side channel.
    """

    def __init__(
        self,
        tokenizer_dir: str,
        chat_format: str,
        max_seq_len: int,
        overlong: str,
        storage: Storage | None = None,
    ) -> None:
        self.chat_format = get_chat_format(chat_format)
        storage = storage or Storage()
        with tempfile.TemporaryDirectory() as scratch, storage.local_dir(tokenizer_dir, scratch) as local:
            self.tokenizer = configure_tokenizer(load_tokenizer(local), self.chat_format)
        self.max_seq_len = max_seq_len
        self.overlong = overlong

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        conversations = [
            [Message(role=turn["role"], content=turn["content"]) for turn in messages]
            for messages in batch["messages"]
        ]
        encoded = tokenize_conversations(self.tokenizer, self.chat_format, conversations)
        rows: dict[str, list[Any]] = {name: [] for name in TOKENIZED_SCHEMA.names}
        for sample_id, dataset, (input_ids, labels) in zip(
            batch["id"], batch["dataset"], encoded, strict=True
        ):
            truncated = len(input_ids) > self.max_seq_len
            if truncated:
                input_ids, labels = input_ids[: self.max_seq_len], labels[: self.max_seq_len]
            learnable = int((labels != IGNORE_INDEX).sum())
            keep = learnable > 0 and not (truncated and self.overlong == "drop")
            rows["sample_id"].append(str(sample_id))
            rows["dataset"].append(str(dataset))
            rows["input_ids"].append(input_ids if keep else np.zeros(0, np.int32))
            rows["labels"].append(labels if keep else np.zeros(0, np.int32))
            rows["num_tokens"].append(len(input_ids) if keep else 0)
            rows["num_label_tokens"].append(learnable if keep else 0)
            rows["truncated"].append(truncated)
        return pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)
