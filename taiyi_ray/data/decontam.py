"""Decontamination: training data never contains an evaluation item (DESIGN.md).

A training record matches the evaluation catalogue when
1. its document id is a PubMed id (all digits) that an evaluation item has — ids of other sources
   (`test.tsv:12`, CBLUE's `s1`) are local to their file and never compared;
2. its identifying text (the passage; for a question, the stem with its options), normalised, equals
   an evaluation item's; or
3. more than half of its sentence pieces occur among the evaluation texts' pieces — this catches the
   same text cut differently: a BC5CDR BIO sentence is a piece of a CDR_TestSet abstract, and a MedQA
   question re-used with another final sentence.
Normalisation is NFKC + case folding + removing all whitespace (so "( ADR )" from a tokenised BIO file
equals "(ADR)"); pieces are the normalised text split at sentence punctuation, at least
`MIN_PIECE_CHARS` long. Boilerplate is not evidence: a piece that several items of one evaluation set
share ("Which of the following is the most likely diagnosis?", "(ABSTRACT TRUNCATED AT 250 WORDS)"),
or a short text they share ("Materials and methods ."), is ignored; so are texts shorter than
`MIN_TEXT_CHARS` ("1 .", "Results ."). A longer text that several evaluation items share is a
duplicated item, and still matches.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

from taiyi_ray.config.data import Catalogue
from taiyi_ray.data.convert import iter_records
from taiyi_ray.data.formats import BadRecord
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import Storage

log = logging.getLogger(__name__)

MIN_PIECE_CHARS = 25
MIN_TEXT_CHARS = 10
BOILERPLATE_MAX_CHARS = 40
# Two ways to cut a text into sentence pieces: at every full stop, and at full stops not followed by a digit.
# The first matches BIO sentences split before list numbers ("... rats. 1. Quinine ..."), the second keeps
# decimals whole ("27.1%"); a text matches when either way finds most of its pieces.
_PIECE_RULES = (re.compile(r"[.!?;。！？；]"), re.compile(r"\.(?!\d)|[!?;。！？；]"))
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, case-folded, without any whitespace: the form texts are compared in."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", text).casefold())


def pieces(normalised: str) -> list[list[str]]:
    """The sentence pieces (of at least `MIN_PIECE_CHARS`) of a normalised text, under each cutting rule."""
    return [
        [piece for piece in rule.split(normalised) if len(piece) >= MIN_PIECE_CHARS] for rule in _PIECE_RULES
    ]


def record_texts(record: Record) -> Iterator[str]:
    """The texts of a record that an evaluation item could share: passage, question, context, dialogue."""
    for text in (record.text, record.question, record.context):
        if text and text.strip():
            yield text
    if record.turns:
        yield "\n".join(turn.content for turn in record.turns if turn.role != "assistant")


def identity_text(record: Record) -> str:
    """The normalised text that identifies an item: a question with its options, else the passage.

    A multiple-choice question is the stem and its options together: a short stem ("胰岛素的主要生理作用是")
    is specific enough with its options, and so is compared whole.
    """
    if record.question:
        options = "\n".join((record.choices or {}).values())
        return normalise(f"{record.question}\n{options}")
    return normalise("\n".join(record_texts(record)))


@dataclass
class EvalIndex:
    """What the evaluation catalogue holds, in the forms training records are compared against.

    `texts` and `pieces` map to the (set, item id) that first had them; `boilerplate` holds those that
    another item of the same set has too.
    """

    pmids: dict[str, str] = field(default_factory=dict)
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    pieces: dict[str, tuple[str, str]] = field(default_factory=dict)
    boilerplate: set[str] = field(default_factory=set)
    items: int = 0

    def add(self, record: Record, set_name: str) -> None:
        self.items += 1
        owner = (set_name, record.id)
        if record.document_id.isdigit():
            self.pmids.setdefault(record.document_id, set_name)
        self._note(self.texts, identity_text(record), owner)
        for text in record_texts(record):
            for piece in {piece for cut in pieces(normalise(text)) for piece in cut}:
                self._note(self.pieces, piece, owner)

    def _note(self, table: dict[str, tuple[str, str]], key: str, owner: tuple[str, str]) -> None:
        first = table.setdefault(key, owner)
        if first != owner and first[0] == owner[0]:
            self.boilerplate.add(key)

    def match(self, record: Record) -> str | None:
        """Why `record` counts as an evaluation item, or None when it does not."""
        if record.document_id.isdigit() and record.document_id in self.pmids:
            return f"PubMed id {record.document_id} is an item of {self.pmids[record.document_id]}"
        identity = identity_text(record)
        generic = identity in self.boilerplate and len(identity) < BOILERPLATE_MAX_CHARS
        if len(identity) >= MIN_TEXT_CHARS and identity in self.texts and not generic:
            set_name, item = self.texts[identity]
            return f"its text equals item {item} of {set_name}"
        for text in record_texts(record):
            for cut in pieces(normalise(text)):
                own = [piece for piece in cut if piece not in self.boilerplate]
                shared = [piece for piece in own if piece in self.pieces]
                if own and 2 * len(shared) > len(own):
                    set_name, item = self.pieces[shared[0]]
                    return f"{len(shared)} of its {len(own)} sentences occur in {set_name} (e.g. item {item})"
        return None


def build_eval_index(catalogue: Catalogue, storage: Storage) -> EvalIndex:
    """Convert every evaluation set whose file exists (absent ones are logged, as evaluation reports them)."""
    index = EvalIndex()
    seen: set[tuple[str, str]] = set()
    for entry in catalogue.datasets:
        if (entry.format, entry.uri) in seen:
            continue  # BC5CDR-Chem, -Dise and -CID read the same file: its texts are indexed once
        seen.add((entry.format, entry.uri))
        if not storage.exists(entry.uri):
            log.info(
                "decontamination: %s has no file at %s; nothing to compare against", entry.name, entry.uri
            )
            continue
        bad = 0
        for item in iter_records(entry, storage):
            if isinstance(item, BadRecord):
                bad += 1
            else:
                index.add(item, entry.name)
        if bad:
            log.warning("decontamination: %d unreadable items of %s were not indexed", bad, entry.name)
    log.info(
        "decontamination index: %d items, %d PubMed ids, %d texts, %d sentence pieces",
        index.items,
        len(index.pmids),
        len(index.texts),
        len(index.pieces),
    )
    return index
