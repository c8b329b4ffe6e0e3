"""Evaluation sets: a catalogue entry's records, each with its prompt, gold answer and answer space.

Everything here is the data layer's (converters, templates, serialiser, answer spaces); this module
only gathers it per item, applies `limit` (the first N items in source order, so a limited run is a
prefix of the full one), and says which sets are missing: a set whose file is absent is reported,
never silently dropped (CHEMDNER and the official LitCovid test are not in ../shared/data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from taiyi_ray.config.data import Catalogue, DatasetEntry
from taiyi_ray.data.answers import AnswerSpace, answer_space
from taiyi_ray.data.convert import iter_records
from taiyi_ray.data.formats import BadRecord
from taiyi_ray.data.instruct import build_prompt, gold_answer
from taiyi_ray.data.schema import Message, Record
from taiyi_ray.eval.scoring import SCORE_TASK_OF, ScoreTask, default_metric
from taiyi_ray.storage import Storage

log = logging.getLogger(__name__)

SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A set name becomes file names (predictions/SET.jsonl): letters, digits, '.', '_' and '-' only."""


class EvalSetError(ValueError):
    """An evaluation set cannot be used as catalogued (the message names the file, record and reason)."""


@dataclass(frozen=True)
class EvalItem:
    """One item: the gold record, the conversation asking for its answer, and the serialised gold."""

    record: Record
    messages: tuple[Message, ...]
    gold_answer: str
    space: AnswerSpace

    @property
    def prompt(self) -> str:
        """The last user message: what the report and prediction files show as the prompt."""
        return next((message.content for message in reversed(self.messages) if message.role == "user"), "")

    @property
    def prompt_key(self) -> str:
        """sha256 of the conversation: the prediction cache's key (with model and settings around it)."""
        payload = json.dumps([message.model_dump() for message in self.messages], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EvalSet:
    """A catalogue entry and its items; `missing` when its file is absent (then there are no items)."""

    entry: DatasetEntry
    items: tuple[EvalItem, ...]
    missing: bool = False
    source_items: int = 0

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def score_task(self) -> ScoreTask:
        return SCORE_TASK_OF[self.entry.task]

    @property
    def metric(self) -> str:
        return self.entry.metric or default_metric(self.score_task)

    def digest(self) -> str:
        """sha256 over the items' ids, prompts and gold answers: what a finished set's result depends on."""
        hasher = hashlib.sha256(self.name.encode("utf-8"))
        for item in self.items:
            for part in (item.record.id, item.prompt_key, item.gold_answer):
                hasher.update(b"\x00" + part.encode("utf-8"))
        return hasher.hexdigest()


def select_entries(catalogue: Catalogue, names: Sequence[str] | None) -> list[DatasetEntry]:
    """The entries named in `names` (catalogue order), or all; an unknown name is an error."""
    if names is None:
        return list(catalogue.datasets)
    known = {entry.name for entry in catalogue.datasets}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise EvalSetError(
            f"eval.sets names {unknown}, not in catalogue {catalogue.name!r}: expected some of {sorted(known)}"
        )
    return [entry for entry in catalogue.datasets if entry.name in set(names)]


def load_eval_set(entry: DatasetEntry, storage: Storage, limit: int | None, template_seed: int) -> EvalSet:
    """Read one entry's records (all of them are converted; the first `limit` become items)."""
    if not SET_NAME.match(entry.name):
        raise EvalSetError(
            f"dataset name {entry.name!r} cannot name a file: expected letters, digits, '.', '_' or '-'"
        )
    if entry.task not in SCORE_TASK_OF:
        raise EvalSetError(
            f"dataset {entry.name!r}: task {entry.task!r} has no scorer; expected one of {sorted(SCORE_TASK_OF)}"
        )
    if not storage.exists(entry.uri):
        log.warning("%s: %s is absent; the set is reported as missing", entry.name, entry.uri)
        return EvalSet(entry, (), missing=True)
    items: list[EvalItem] = []
    seen: set[str] = set()
    total = 0
    for record in iter_records(entry, storage):
        if isinstance(record, BadRecord):
            raise EvalSetError(f"dataset {entry.name!r}: {record.describe()}")
        total += 1
        if record.id in seen:
            raise EvalSetError(
                f"dataset {entry.name!r}: record id {record.id!r} appears twice in {entry.uri}"
            )
        seen.add(record.id)
        if limit is None or len(items) < limit:
            items.append(_item(record, entry, template_seed))
    return EvalSet(entry, tuple(items), source_items=total)


def _item(record: Record, entry: DatasetEntry, template_seed: int) -> EvalItem:
    return EvalItem(
        record=record,
        messages=tuple(build_prompt(record, entry, template_seed)),
        gold_answer=gold_answer(record, entry),
        space=answer_space(record, entry),
    )
