"""English document classification with several labels per document: HoC and LitCovid.

`hoc_tsv`: the BLURB Hallmarks-of-Cancer TSV (multi-label sentence classification).

Header `labels<TAB>sentence<TAB>index`; `labels` holds ten comma-separated `k_v` flags (hallmark index
k = 0..9 in the alphabetical order of `taiyi_ray.data.answers.HOC_HALLMARKS`, v = 0/1); `index` is
`PMID_sN`. One record per row (sentence) with a label per positive flag, or the single label `none`
when no flag is set (Taiyi scored `none` as a class). The document id is the PMID. An empty `labels`
column is refused unless the file is read as unlabelled.

`litcovid_csv`: BioCreative VII LitCovid track CSV (multi-label topic classification).

The official files have the columns `pmid,journal,title,abstract,keywords,pub_type,authors,doi,label`
with `label` = topics joined by `;` (the test file without gold has no `label` column: read it with
`unlabelled`, and its records carry no labels; in a labelled file a row without topics is refused). One record per article; the text is the title, a newline, and the abstract. Topics
must be among the seven LitCovid topics (`taiyi_ray.data.answers.LITCOVID_TOPICS`). Quoted fields may
span lines; line numbers are those of the row's first line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.answers import HOC_HALLMARKS, HOC_NONE, LITCOVID_TOPICS
from taiyi_ray.data.formats._io import bad, build_record, iter_lines, label_or_none, records_from_csv
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record

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
            fields = _hoc_tsv_fields(source, flags, sentence, index)
        except ValueError as error:
            yield bad(source, line.number, index or None, str(error), line.text)
            continue
        yield build_record(source, line.number, line.text, fields)


def _hoc_tsv_fields(source: Source, flags: str, sentence: str, index: str) -> dict[str, Any]:
    if not index:
        raise ValueError("the index column (PMID_sN) is empty")
    if not sentence:
        raise ValueError("the sentence column is empty")
    if label_or_none(source, flags, "labels") is None:
        return {"id": index, "document_id": _hoc_document(index), "task": "tc_multilabel", "text": sentence}
    labels = [HOC_HALLMARKS[position] for position in _hoc_tsv_positive_indices(flags)]
    return {
        "id": index,
        "document_id": _hoc_document(index),
        "task": "tc_multilabel",
        "text": sentence,
        "labels": labels or [HOC_NONE],
    }


def _hoc_document(index: str) -> str:
    """The PMID of a `PMID_sN` sentence index."""
    return index.rsplit("_s", 1)[0] if "_s" in index else index


def _hoc_tsv_positive_indices(flags: str) -> list[int]:
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


REQUIRED = ("pmid", "title", "abstract")


def convert_litcovid_csv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multi-label record per CSV row."""
    return records_from_csv(
        source,
        REQUIRED,
        lambda row, _: _litcovid_csv_fields(source, row),
        lambda row: row.get("pmid") or None,
    )


def _litcovid_csv_fields(source: Source, row: dict[str, str]) -> dict[str, Any]:
    pmid = row["pmid"].strip()
    if not pmid:
        raise ValueError("the pmid column is empty")
    title, abstract = row["title"].strip(), row["abstract"].strip()
    if not title and not abstract:
        raise ValueError("both title and abstract are empty")
    labels = [topic.strip() for topic in (row.get("label") or "").split(";") if topic.strip()]
    if label_or_none(source, labels, "label") is not None:
        unknown = [topic for topic in labels if topic not in LITCOVID_TOPICS]
        if unknown:
            raise ValueError(f"unknown topics {unknown}, expected topics among {list(LITCOVID_TOPICS)}")
    text = f"{title}\n{abstract}".strip()
    return {"id": pmid, "document_id": pmid, "task": "tc_multilabel", "text": text, "labels": labels}
