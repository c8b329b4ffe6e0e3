"""`litcovid_csv`: BioCreative VII LitCovid track CSV (multi-label topic classification).

The official files have the columns `pmid,journal,title,abstract,keywords,pub_type,authors,doi,label`
with `label` = topics joined by `;` (the test file without gold has no `label` column: records then
carry no labels). One record per article; the text is the title, a newline, and the abstract. Topics
must be among the seven LitCovid topics (`taiyi_ray.data.vocab.LITCOVID_TOPICS`). Quoted fields may
span lines; line numbers are those of the row's first line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from taiyi_ray.data.formats._io import bad, build_record
from taiyi_ray.data.formats.base import BadRecord, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.data.vocab import LITCOVID_TOPICS

REQUIRED = ("pmid", "title", "abstract")


def convert_litcovid_csv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one multi-label record per CSV row."""
    with (
        source.storage.open(source.uri, "rb") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text,
    ):
        reader = csv.reader(text)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            return
        except csv.Error as error:
            yield bad(source, 1, None, f"unreadable CSV header: {error}")
            return
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            yield bad(
                source,
                1,
                None,
                f"header lacks columns {missing}: got {header}, expected at least {list(REQUIRED)} and label",
            )
            return
        yield from _rows(source, reader, header)


def _rows(source: Source, reader: Any, header: list[str]) -> Iterator[Record | BadRecord]:
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield bad(source, line, None, f"unreadable CSV row: {error}")
            return
        raw = ",".join(row)
        if not any(cell.strip() for cell in row):
            line = reader.line_num + 1
            continue
        if len(row) != len(header):
            yield bad(
                source,
                line,
                row[0] if row else None,
                f"expected {len(header)} columns as in the header, got {len(row)}",
                raw,
            )
        else:
            try:
                fields = _fields(dict(zip(header, row, strict=True)))
            except ValueError as error:
                yield bad(source, line, row[header.index("pmid")], str(error), raw)
            else:
                yield build_record(source, line, raw, fields)
        line = reader.line_num + 1


def _fields(row: dict[str, str]) -> dict[str, Any]:
    pmid = row["pmid"].strip()
    if not pmid:
        raise ValueError("the pmid column is empty")
    title, abstract = row["title"].strip(), row["abstract"].strip()
    if not title and not abstract:
        raise ValueError("both title and abstract are empty")
    labels: list[str] = []
    if "label" in row:
        labels = [topic.strip() for topic in row["label"].split(";") if topic.strip()]
        unknown = [topic for topic in labels if topic not in LITCOVID_TOPICS]
        if unknown:
            raise ValueError(f"unknown topics {unknown}, expected topics among {list(LITCOVID_TOPICS)}")
    text = f"{title}\n{abstract}".strip()
    return {"id": pmid, "document_id": pmid, "task": "tc_multilabel", "text": text, "labels": labels}
