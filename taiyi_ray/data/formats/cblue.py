"""CBLUE's Chinese biomedical layouts (CBLUEbenchmark/CBLUE README and `cblue/data/data_process.py`; IMCS-V2
from lemuria-wchen/imcs21-cblue; CMID from IMU-MachineLearningSXD/CMID). Every format reads its file as a
stream; a labelled item without its gold is a bad record naming the field unless the file is read as
unlabelled (`--unlabelled`). Ids given by CBLUE (`s1`, ...) are unique only within a file, so document ids
are `{file}:{id}`; items without ids get `{file}:{n}`. `options.any_label` / `options.any_type` accept
labels and types outside the published sets.

`cmeee` (= `cblue_cmeee`): CMeEE / CMeEE-V2 NER, a JSON array of `{text, entities: [{start_idx, end_idx,
type, entity}]}`. **`end_idx` is inclusive**; records store `[start, end)`. Nested mentions are kept; types
are the nine CMeEE codes. An item without `entities` is unlabelled; `entities: []` is a sentence without
mentions (the V2 unlabelled test file writes `[]` too: read it with `--unlabelled` all the same).

`cmeie` (= `cblue_cmeie`): CMeIE / CMeIE-V2 RE, JSON Lines `{text, spo_list: [{predicate, subject,
subject_type, object, object_type}]}`; objects are `{"@value": ...}` dicts or plain strings. Subjects and
objects become entities, one per distinct (text, type), at the **first occurrence** of their text (the
source gives no offsets); a text that does not occur is a bad record. Complex objects are rejected.

`kuake_qic` (= `cblue_kuake_qic`, JSON array `{id, query, label}`, 11 intents), `cblue_chip_ctc` (`{id,
label, text}`, the 44 categories of `category.xlsx`): one `tc` record per item.

`cblue_cmid`: CMID, a JSON array of `{originalText, entities, seg_result, label_4class: [..],
label_36class: [..]}`. `options.level`: `36class` (default, the finest) or `4class` (checked against the
four primary intents). A label list must hold exactly one label. `entities` (a tagger's output) is not kept.

`cblue_chip_sts` (`{id, text1, text2, label "0"/"1", category}`), `cblue_kuake_qqr` (`{id, query1, query2,
label "0"/"1"/"2"}`), `cblue_kuake_qtr` (`{id, query, title, label "0".."3"}`): `text_pair` records, the
second text as `context`. QQR's few `NA` labels are rejected (CBLUE's baseline silently reads them as 0).
`covid_similarity_csv`: Tianchi's COVID question pairs (dataset 76751, competition 231776), UTF-8 CSV
`category,query1,query2,label` (train/dev) or `id,category,query1,query2,label` (test), as the competition
files copied in anxiang1836/query_similar_tianchi_2020 have them; label 1 = same meaning. `text_pair` like
CHIP-STS, id the row's `id` or `{file}:{n}`; `category` (the disease) is not kept.

`cblue_chip_cdn`: CHIP-CDN, a JSON array of `{text, normalized_result: "a##b"}`, as `generation`: the
answer is the ICD-10 standard term(s) joined by `##` exactly as the source has them. Not `tc`: the answer
space is the ~40,000 terms of the ICD-10 Beijing clinical v601 list and an item has one to several, so no
prompt can offer the choices; the model writes the terms (how Taiyi trained CDN).

`cblue_chip_cdee`: CHIP-CDEE clinical-finding events, a JSON array of `{id, text, event: [{core_name,
tendency, character: [..], anatomy_list: [..]}]}` (CBLUE format_checker_CDEE.py). Each event becomes an
`Event` of type `临床发现` whose trigger is `core_name`, with arguments of roles `tendency` (`否定` or
`不确定`; the empty affirmed tendency gives none), `character` and `anatomy`, each naming an entity of that
type (one per distinct text and role). CDEE writes normalised words (`左侧颈部` for text `左侧面颈部`), so
offsets are the first occurrence of the text, or None when it does not occur; likewise trigger offsets.

IMCS-V2 (IMCS21), a JSON object `{example_id: {diagnosis, self_report, dialogue: [{sentence_id, speaker,
sentence, dialogue_act, BIO_label, symptom_norm, symptom_type}], explicit_info, implicit_info, report}}`,
read one dialogue at a time. `cblue_imcs_v2_ner`: one `ner` record per utterance from its character-level
`BIO_label` (space-separated, one tag per character of `sentence`; the five IMCS types).
`cblue_imcs_v2_dac`: one `tc` record per utterance, `speaker：sentence` -> its `dialogue_act` (16 acts).
`cblue_imcs_v2_sr`: one `tc_multilabel` record per dialogue -> the dialogue-level symptom labels of
`implicit_info.Symptom` as `症状（有|无|不确定）` (symptom_type 1/0/2): the normalised symptom and whether the
patient has it, which is what IMCS-SR scores. `cblue_imcs_v2_mrg`: `generation`, the dialogue -> the first
of its two reference reports as `主诉：…` lines in the file's field order (the second reference is not
kept). Dialogue text: `患者自述：self_report` then one `speaker：sentence` line per utterance. Utterance ids
are `{example_id}:{sentence_id}`; the document id is the example id (global in IMCS21).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from taiyi_ray.data import answers
from taiyi_ray.data.formats._io import (
    ItemProblem,
    bio_chunks,
    bio_tag_problem,
    checked_label,
    first_offsets,
    item_id,
    label_or_none,
    local_id,
    mention_id,
    present_or_none,
    records_from_csv,
    records_from_json_array,
    records_from_json_lines,
    records_from_json_members,
    require_object,
    require_str,
    required_id,
)
from taiyi_ray.data.formats.base import BadRecord, Converter, Source
from taiyi_ray.data.schema import Record
from taiyi_ray.storage import basename

Fields = dict[str, Any]
CDEE_EVENT_TYPE = "临床发现"
CDEE_ROLES = (("character", "character"), ("anatomy_list", "anatomy"))  # source list -> role


def _array(
    source: Source, fields: Callable[[dict[str, Any], int, str], Fields], local: bool = False
) -> Iterator[Record | BadRecord]:
    """Records of a JSON array of objects: `fields(item, index, file name)`.

    `local`: the items have no ids, so a bad one is reported as `{file}:{n}` (its record's id).
    """
    file_name = basename(source.uri)
    return records_from_json_array(
        source,
        lambda value, index: fields(require_object(value, "the CBLUE fields"), index, file_name),
        (lambda value, index: local_id(source, index + 1)) if local else item_id,
    )


# --- NER and RE ----------------------------------------------------------------------------------


def convert_cmeee(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one NER record per sentence of a CMeEE JSON array."""
    any_type = bool(source.options.get("any_type", False))
    return records_from_json_array(
        source,
        lambda value, index: _cmeee_fields(source, value, local_id(source, index + 1), any_type),
        lambda value, index: local_id(source, index + 1),
    )


def _cmeee_fields(source: Source, value: Any, record_id: str, any_type: bool) -> Fields:
    item = require_object(value, "'text' and 'entities'")
    text = require_str(item.get("text"), "text")
    raw_entities = present_or_none(source, item, "entities") or []
    if not isinstance(raw_entities, list):
        raise ValueError(f"'entities' must be a list, got {type(raw_entities).__name__}")
    entities = [_cmeee_entity(entity, text, number, any_type) for number, entity in enumerate(raw_entities)]
    return {"id": record_id, "document_id": record_id, "task": "ner", "text": text, "entities": entities}


def _cmeee_entity(entity: Any, text: str, number: int, any_type: bool) -> Fields:
    if not isinstance(entity, dict):
        raise ValueError(f"entity {number + 1} must be an object, got {type(entity).__name__}")
    start, end = entity.get("start_idx"), entity.get("end_idx")
    mention, entity_type = entity.get("entity"), entity.get("type")
    if not isinstance(start, int) or not isinstance(end, int):
        raise ValueError(f"entity {mention!r}: start_idx/end_idx must be integers, got {start!r}/{end!r}")
    if not isinstance(mention, str) or not isinstance(entity_type, str):
        raise ValueError(
            f"entity {number + 1}: 'entity' and 'type' must be strings, got {mention!r}/{entity_type!r}"
        )
    if not any_type and entity_type not in answers.CMEEE_TYPES:
        raise ValueError(
            f"entity {mention!r}: unknown type {entity_type!r}, expected one of {list(answers.CMEEE_TYPES)}"
        )
    if not 0 <= start <= end < len(text):
        raise ValueError(
            f"entity {mention!r} [start_idx {start}, end_idx {end}] (end inclusive) lies outside the text "
            f"(length {len(text)})"
        )
    if text[start : end + 1] != mention:
        raise ValueError(
            f"entity text {mention!r} does not match the text at [start_idx {start}, end_idx {end}] "
            f"(end inclusive): {text[start : end + 1]!r}"
        )
    return {"id": f"T{number + 1}", "type": entity_type, "text": mention, "offsets": [(start, end + 1)]}


def convert_cmeie(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one RE record per line of a CMeIE JSONL file."""
    return records_from_json_lines(source, lambda value, record_id: _cmeie_fields(source, value, record_id))


def _cmeie_fields(source: Source, value: Any, record_id: str) -> Fields:
    item = require_object(value, "'text' and 'spo_list'")
    text = require_str(item.get("text"), "text")
    spo_list = present_or_none(source, item, "spo_list") or []
    if not isinstance(spo_list, list):
        raise ValueError(f"'spo_list' must be a list, got {type(spo_list).__name__}")
    entities: dict[tuple[str, str], Fields] = {}
    relations = []
    for number, spo in enumerate(spo_list, start=1):
        if not isinstance(spo, dict):
            raise ValueError(f"spo_list item {number} must be an object, got {type(spo).__name__}")
        predicate = require_str(spo.get("predicate"), f"spo_list[{number}].predicate")
        ends = [
            mention_id(entities, text, _cmeie_plain(spo.get(role), role), _cmeie_plain(spo.get(kind), kind))
            for role, kind in (("subject", "subject_type"), ("object", "object_type"))
        ]
        relations.append({"type": predicate, "head_id": ends[0], "tail_id": ends[1]})
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "re",
        "text": text,
        "entities": list(entities.values()),
        "relations": relations,
    }


def _cmeie_plain(value: Any, field: str) -> str:
    """A subject/object (or type) as a string: plain, or the `@value` of a V2 dict."""
    if isinstance(value, dict):
        extra = sorted(set(value) - {"@value"})
        if extra:
            raise ValueError(f"{field} has keys {extra} besides '@value': complex objects are not supported")
        value = value.get("@value")
    return require_str(value, field)


# --- classification and sentence pairs ---------------------------------------------------------


def _labelled(text_field: str, context_field: str | None, labels: tuple[str, ...]) -> Converter:
    """A converter of a JSON array `{id, <text_field>[, <context_field>], label}`, one record per item:
    `tc` on one text, `text_pair` with the second text as `context`."""

    def fields(source: Source, item: dict[str, Any], file_name: str) -> Fields:
        record_id = required_id(item)
        label = checked_label(source, item.get("label"), "label", labels)
        built = {
            "id": record_id,
            "document_id": f"{file_name}:{record_id}",
            "task": "tc" if context_field is None else "text_pair",
            "text": require_str(item.get(text_field), text_field),
            "labels": [label] if label else [],
        }
        if context_field is not None:
            built["context"] = require_str(item.get(context_field), context_field)
        return built

    return lambda source: _array(source, lambda item, index, file_name: fields(source, item, file_name))


convert_kuake_qic = _labelled("query", None, answers.KUAKE_QIC_LABELS)
convert_chip_ctc = _labelled("text", None, answers.CHIP_CTC_LABELS)
convert_chip_sts = _labelled("text1", "text2", answers.CHIP_STS_LABELS)
convert_kuake_qqr = _labelled("query1", "query2", answers.KUAKE_QQR_LABELS)
convert_kuake_qtr = _labelled("query", "title", answers.KUAKE_QTR_LABELS)


def convert_covid_similarity_csv(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one text_pair record per row of a COVID question-pair CSV."""
    return records_from_csv(
        source,
        ("query1", "query2"),
        lambda row, local: _covid_similarity_fields(source, row, local),
        lambda row: row.get("id") or None,
        encoding=str(source.options.get("encoding", "utf-8-sig")),
    )


def _covid_similarity_fields(source: Source, row: dict[str, str], local: str) -> Fields:
    own_id = (row.get("id") or "").strip()
    label = checked_label(source, (row.get("label") or "").strip(), "label", answers.CHIP_STS_LABELS)
    return {
        "id": own_id or local,
        "document_id": f"{basename(source.uri)}:{own_id}" if own_id else local,
        "task": "text_pair",
        "text": require_str(row["query1"], "query1").strip(),
        "context": require_str(row["query2"], "query2").strip(),
        "labels": [label] if label else [],
    }


def convert_cmid(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one `tc` record per CMID question, at the label level `options.level` (default 36class)."""
    level = str(source.options.get("level", "36class"))
    if level not in ("4class", "36class"):
        raise ValueError(f"cblue_cmid: options.level must be '4class' or '36class', got {level!r}")
    allowed = answers.CMID_4CLASS_LABELS if level == "4class" else ()
    return _array(
        source,
        lambda item, index, _: _cmid_fields(
            source, item, local_id(source, index + 1), f"label_{level}", allowed
        ),
        local=True,
    )


def _cmid_fields(
    source: Source, item: dict[str, Any], record_id: str, field: str, allowed: tuple[str, ...]
) -> Fields:
    value = label_or_none(source, item.get(field), field)
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"{field} holds {len(value)} labels {value!r}: a tc record takes exactly one")
        value = value[0]
    label = checked_label(source, value, field, allowed) if value is not None else None
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "tc",
        "text": require_str(item.get("originalText"), "originalText"),
        "labels": [label] if label else [],
    }


def convert_chip_cdn(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one `generation` record per CDN term: the original term -> its standard terms."""
    return _array(
        source, lambda item, index, _: _cdn_fields(source, item, local_id(source, index + 1)), local=True
    )


def _cdn_fields(source: Source, item: dict[str, Any], record_id: str) -> Fields:
    answer = label_or_none(source, item.get("normalized_result"), "normalized_result")
    return {
        "id": record_id,
        "document_id": record_id,
        "task": "generation",
        "text": require_str(item.get("text"), "text"),
        "answer": require_str(answer, "normalized_result") if answer is not None else None,
    }


# --- CHIP-CDEE events ----------------------------------------------------------------------------


def convert_chip_cdee(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one `ee` record per CDEE text, its clinical-finding events with their arguments."""
    return _array(source, lambda item, index, file_name: _cdee_fields(source, item, file_name))


def _cdee_fields(source: Source, item: dict[str, Any], file_name: str) -> Fields:
    record_id = required_id(item)
    text = require_str(item.get("text"), "text")
    raw_events = present_or_none(source, item, "event") or []
    if not isinstance(raw_events, list):
        raise ValueError(f"'event' must be a list, got {type(raw_events).__name__}")
    entities: dict[tuple[str, str], Fields] = {}
    events = [_cdee_event(event, number, text, entities) for number, event in enumerate(raw_events, start=1)]
    return {
        "id": record_id,
        "document_id": f"{file_name}:{record_id}",
        "task": "ee",
        "text": text,
        "entities": list(entities.values()),
        "events": events,
    }


def _cdee_event(event: Any, number: int, text: str, entities: dict[tuple[str, str], Fields]) -> Fields:
    where = f"event[{number}]"
    if not isinstance(event, dict):
        raise ValueError(f"{where} must be an object, got {type(event).__name__}")
    trigger = require_str(event.get("core_name"), f"{where}.core_name")
    arguments = []
    tendency = event.get("tendency", "")
    if tendency:
        if tendency not in answers.CDEE_TENDENCIES:
            raise ValueError(f"{where}.tendency {tendency!r} is not one of {['', *answers.CDEE_TENDENCIES]}")
        arguments.append(
            {"role": "tendency", "ref_id": mention_id(entities, text, tendency, "tendency", False)}
        )
    for field, role in CDEE_ROLES:
        values = event.get(field, [])
        if not isinstance(values, list):
            raise ValueError(f"{where}.{field} must be a list, got {type(values).__name__}")
        for value in values:
            mention = require_str(value, f"{where}.{field}")
            arguments.append({"role": role, "ref_id": mention_id(entities, text, mention, role, False)})
    offsets = first_offsets(text, trigger)
    return {
        "id": f"E{number}",
        "type": CDEE_EVENT_TYPE,
        "trigger": trigger,
        "trigger_offsets": offsets,
        "arguments": arguments,
    }


# --- IMCS-V2 dialogues ---------------------------------------------------------------------------


def _dialogue(key: str, value: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A dialogue object and its utterances (objects with a string `sentence`)."""
    dialogue = require_object(value, "'self_report' and 'dialogue'")
    utterances = dialogue.get("dialogue")
    if not isinstance(utterances, list):
        raise ValueError(f"'dialogue' must be a list of utterances, got {type(utterances).__name__}")
    for number, utterance in enumerate(utterances, start=1):
        if not isinstance(utterance, dict) or not isinstance(utterance.get("sentence"), str):
            raise ValueError(f"utterance {number} must be an object with a string 'sentence'")
    return dialogue, utterances


def _dialogue_text(dialogue: dict[str, Any], utterances: list[dict[str, Any]]) -> str:
    lines = [f"患者自述：{dialogue['self_report']}"] if dialogue.get("self_report") else []
    lines += [f"{utterance.get('speaker', '')}：{utterance['sentence']}" for utterance in utterances]
    return "\n".join(lines)


def _per_utterance(
    fields: Callable[[Source, dict[str, Any], str], Fields],
) -> Converter:
    """A converter giving one record per utterance; a bad utterance is reported on its own."""

    def expand(source: Source, key: str, value: Any) -> Iterator[Fields | ItemProblem]:
        _, utterances = _dialogue(key, value)
        for number, utterance in enumerate(utterances, start=1):
            record_id = f"{key}:{utterance.get('sentence_id', number)}"
            try:
                built = fields(source, utterance, record_id)
            except ValueError as error:
                yield ItemProblem(record_id, str(error))
                continue
            yield {"id": record_id, "document_id": key, **built}

    return lambda source: records_from_json_members(source, lambda key, value: expand(source, key, value))


def _imcs_ner_fields(source: Source, utterance: dict[str, Any], record_id: str) -> Fields:
    sentence = require_str(utterance["sentence"], "sentence")
    bio = label_or_none(source, utterance.get("BIO_label"), "BIO_label")
    tags = require_str(bio, "BIO_label").split() if bio is not None else ["O"] * len(sentence)
    if len(tags) != len(sentence):
        raise ValueError(f"BIO_label has {len(tags)} tags for {len(sentence)} characters of the sentence")
    for tag in tags:
        problem = bio_tag_problem(tag)
        if (
            problem is None
            and tag[2:] not in ("", *answers.IMCS_ENTITY_TYPES)
            and not source.options.get("any_type")
        ):
            problem = f"unknown entity type in {tag!r}, expected one of {list(answers.IMCS_ENTITY_TYPES)}"
        if problem:
            raise ValueError(f"BIO_label: {problem}")
    entities = [
        {"id": f"T{n + 1}", "type": kind, "text": sentence[first : last + 1], "offsets": [(first, last + 1)]}
        for n, (kind, first, last) in enumerate(bio_chunks(tags)[0])
    ]
    return {"task": "ner", "text": sentence, "entities": entities}


def _imcs_dac_fields(source: Source, utterance: dict[str, Any], record_id: str) -> Fields:
    label = checked_label(source, utterance.get("dialogue_act"), "dialogue_act", answers.IMCS_DIALOGUE_ACTS)
    text = f"{utterance.get('speaker', '')}：{require_str(utterance['sentence'], 'sentence')}"
    return {"task": "tc", "text": text, "labels": [label] if label else []}


convert_imcs_v2_ner = _per_utterance(_imcs_ner_fields)
convert_imcs_v2_dac = _per_utterance(_imcs_dac_fields)


def convert_imcs_v2_sr(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one `tc_multilabel` record per dialogue: its symptoms and whether the patient has each."""
    return records_from_json_members(source, lambda key, value: iter([_imcs_sr_fields(source, key, value)]))


def _imcs_sr_fields(source: Source, key: str, value: Any) -> Fields:
    dialogue, utterances = _dialogue(key, value)
    implicit = dialogue.get("implicit_info")
    symptoms = implicit.get("Symptom") if isinstance(implicit, dict) else None
    symptoms = label_or_none(source, symptoms or None, "implicit_info.Symptom")
    if symptoms is not None and not isinstance(symptoms, dict):
        raise ValueError(f"implicit_info.Symptom must be an object {{symptom: type}}, got {symptoms!r}")
    labels = []
    for symptom, status in (symptoms or {}).items():
        if str(status) not in answers.IMCS_SYMPTOM_STATUS:
            raise ValueError(
                f"symptom {symptom!r}: type {status!r} is not one of {list(answers.IMCS_SYMPTOM_STATUS)}"
            )
        labels.append(f"{symptom}（{answers.IMCS_SYMPTOM_STATUS[str(status)]}）")
    text = _dialogue_text(dialogue, utterances)
    return {"id": key, "document_id": key, "task": "tc_multilabel", "text": text, "labels": labels}


def convert_imcs_v2_mrg(source: Source) -> Iterator[Record | BadRecord]:
    """Yield one `generation` record per dialogue: the dialogue -> its first reference report."""
    return records_from_json_members(source, lambda key, value: iter([_imcs_mrg_fields(source, key, value)]))


def _imcs_mrg_fields(source: Source, key: str, value: Any) -> Fields:
    dialogue, utterances = _dialogue(key, value)
    reports = label_or_none(source, dialogue.get("report"), "report")
    answer = None
    if reports is not None:
        report = reports[0] if isinstance(reports, list) else None
        if not isinstance(report, dict) or not report:
            raise ValueError(f"report must be a list of {{field: text}} reports, got {reports!r}"[:300])
        answer = "\n".join(
            f"{field}：{require_str(text, f'report.{field}')}" for field, text in report.items()
        )
    text = _dialogue_text(dialogue, utterances)
    return {"id": key, "document_id": key, "task": "generation", "text": text, "answer": answer}
