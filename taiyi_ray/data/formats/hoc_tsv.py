"""`hoc_tsv`: the BLURB Hallmarks-of-Cancer TSV (multi-label sentence classification).

Header `labels<TAB>sentence<TAB>index`; `labels` holds ten comma-separated `k_v` flags (hallmark index
k = 0..9 in the alphabetical order of `taiyi_ray.data.vocab.HOC_HALLMARKS`, v = 0/1); `index` is
`PMID_sN`. One record per row (sentence) with a label per positive flag, or the single label `none`
when no flag is set (Taiyi scored `none` as a class). The document id is the PMID.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import bad, build_record, iter_lines
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.data.vocab import HOC_HALLMARKS, HOC_NONE

HEADER = ["labels", "sentence", "index"]


def convert_hoc_tsv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multi-label record per sentence row."""
    for line in iter_lines(source):
        if line.error:
            yield bad(source, line.number, None, line.error)
            continue
        if not line.text.strip() or (line.number == 1 and line.text.split("\t") == HEADER):
            continue
        parts = line.text.split("\t")
        if len(parts) != 3:
            reason = f"expected 3 tab-separated columns (labels, sentence, index), got {len(parts)}"
            yield bad(source, line.number, None, reason, line.text)
            continue
        flags, sentence, index = (part.strip() for part in parts)
        try:
            fields = _fields(flags, sentence, index)
        except ValueError as error:
            yield bad(source, line.number, index or None, str(error), line.text)
            continue
        yield build_record(source, line.number, line.text, fields)


def _fields(flags: str, sentence: str, index: str) -> dict[str, Any]:
    if not index:
        raise ValueError("the index column (PMID_sN) is empty")
    if not sentence:
        raise ValueError("the sentence column is empty")
    labels = [HOC_HALLMARKS[position] for position in _positive_indices(flags)]
    document_id = index.rsplit("_s", 1)[0] if "_s" in index else index
    return {
        "id": index,
        "document_id": document_id,
        "task": "tc_multilabel",
        "text": sentence,
        "labels": labels or [HOC_NONE],
    }


def _positive_indices(flags: str) -> list[int]:
    positive: list[int] = []
    seen: set[int] = set()
    for flag in flags.split(","):
        key, _, value = flag.strip().partition("_")
        if not key.isdigit() or int(key) >= len(HOC_HALLMARKS):
            raise ValueError(f"unknown label index {key!r} in {flag!r}: expected 0..{len(HOC_HALLMARKS) - 1}")
        if value not in ("0", "1"):
            raise ValueError(f"label flag {flag!r}: expected INDEX_0 or INDEX_1")
        if int(key) in seen:
            raise ValueError(f"label index {key} appears twice in {flags!r}")
        seen.add(int(key))
        if value == "1":
            positive.append(int(key))
    return sorted(positive)
