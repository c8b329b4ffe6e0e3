"""`taiyi-ray data stats FILE.jsonl`: counts over unified records, as DESIGN.md defines them per format.

The counts are taken from the records as the converters store them, which is as the sources hold
them: a mention per entity (a PubTator composite mention line is one entity), a relation per stored
relation (CMeIE duplicates kept), each record's labels (HoC: `none` for a sentence with no hallmark),
each record's answer (PubMedQA decision, MedQA letter). `documents` counts distinct document ids (a
BIO sentence is its own document, so there documents = records).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from taiyi_ray.data.convert import read_records
from taiyi_ray.storage import Storage


def compute_stats(path: str, storage: Storage | None = None) -> dict[str, Any]:
    """`{"records", "documents", "entity_mentions", "relations", "labels", "answers"}` of a JSONL file."""
    records = 0
    documents: set[str] = set()
    mentions: Counter[str] = Counter()
    relations: Counter[str] = Counter()
    labels: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    for record in read_records(path, storage):
        records += 1
        documents.add(record.document_id)
        mentions.update(entity.type for entity in record.entities)
        relations.update(relation.type for relation in record.relations)
        labels.update(record.labels)
        if record.answer is not None and record.task in ("qa_yesno", "qa_mc"):
            answers[record.answer] += 1
    return {
        "records": records,
        "documents": len(documents),
        "entity_mentions": dict(sorted(mentions.items())),
        "relations": dict(sorted(relations.items())),
        "labels": dict(sorted(labels.items())),
        "answers": dict(sorted(answers.items())),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A short human-readable summary (the `--json` flag prints the object instead)."""
    lines = [f"records   {stats['records']}", f"documents {stats['documents']}"]
    for key in ("entity_mentions", "relations", "labels", "answers"):
        counts = stats[key]
        if counts:
            shown = ", ".join(f"{name} {count}" for name, count in counts.items())
            lines.append(f"{key:<9} {sum(counts.values())} ({shown})")
    return "\n".join(lines)
