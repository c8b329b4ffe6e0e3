"""Source-format converters, one module per format family (CBLUE, instruction data, ...), and their registry.

`FORMATS` maps the format names of DESIGN.md to converters (`Source -> Iterator[Record | BadRecord]`).
To add a format: write its converter function in its family's module (a new family: a new module), add it here, and list the tasks it can
feed in `FORMAT_TASKS` (its first task is the records' own) and its language in `FORMAT_LANGUAGES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from taiyi_ray.config.data import Language, Task
from taiyi_ray.data.formats.base import BadRecord, Converter, Source
from taiyi_ray.data.formats.bigbio import (
    convert_bigbio_kb,
    convert_bigbio_pairs,
    convert_bigbio_qa,
    convert_bigbio_t2t,
    convert_bigbio_te,
    convert_bigbio_text,
)
from taiyi_ray.data.formats.bio_tsv import convert_bio_tsv
from taiyi_ray.data.formats.cblue import (
    convert_chip_cdee,
    convert_chip_cdn,
    convert_chip_ctc,
    convert_chip_sts,
    convert_cmeee,
    convert_cmeie,
    convert_cmid,
    convert_covid_similarity_csv,
    convert_imcs_v2_dac,
    convert_imcs_v2_mrg,
    convert_imcs_v2_ner,
    convert_imcs_v2_sr,
    convert_kuake_qic,
    convert_kuake_qqr,
    convert_kuake_qtr,
)
from taiyi_ray.data.formats.doc_classification import convert_hoc_tsv, convert_litcovid_csv
from taiyi_ray.data.formats.instruction_data import (
    convert_alpaca_json,
    convert_huatuo_sft_jsonl,
    convert_meddialog_txt,
    convert_sharegpt_jsonl,
    convert_taiyi_instruction,
    convert_unified_jsonl,
)
from taiyi_ray.data.formats.pubtator_cdr import convert_pubtator_cdr
from taiyi_ray.data.formats.qa_sets import (
    convert_huatuo_qa_jsonl,
    convert_liveqa_xml,
    convert_medical_dialogue_csv,
    convert_medmcqa_jsonl,
    convert_medqa_jsonl,
    convert_pubmedqa,
)

FORMATS: Mapping[str, Converter] = MappingProxyType(
    {
        "bio_tsv": convert_bio_tsv,
        "pubtator_cdr": convert_pubtator_cdr,
        "cmeee": convert_cmeee,
        "cmeie": convert_cmeie,
        "kuake_qic": convert_kuake_qic,
        "hoc_tsv": convert_hoc_tsv,
        "litcovid_csv": convert_litcovid_csv,
        "pubmedqa": convert_pubmedqa,
        "medqa_jsonl": convert_medqa_jsonl,
        "medmcqa_jsonl": convert_medmcqa_jsonl,
        "huatuo_qa_jsonl": convert_huatuo_qa_jsonl,
        "medical_dialogue_csv": convert_medical_dialogue_csv,
        "covid_similarity_csv": convert_covid_similarity_csv,
        "liveqa_xml": convert_liveqa_xml,
        "sharegpt_jsonl": convert_sharegpt_jsonl,
        "alpaca_json": convert_alpaca_json,
        "huatuo_sft_jsonl": convert_huatuo_sft_jsonl,
        "meddialog_txt": convert_meddialog_txt,
        "unified_jsonl": convert_unified_jsonl,
        "taiyi_instruction": convert_taiyi_instruction,
        # CBLUE under its family's names; cmeee, cmeie and kuake_qic above are the same converters.
        "cblue_cmeee": convert_cmeee,
        "cblue_cmeie": convert_cmeie,
        "cblue_kuake_qic": convert_kuake_qic,
        "cblue_chip_cdee": convert_chip_cdee,
        "cblue_chip_cdn": convert_chip_cdn,
        "cblue_chip_ctc": convert_chip_ctc,
        "cblue_chip_sts": convert_chip_sts,
        "cblue_kuake_qqr": convert_kuake_qqr,
        "cblue_kuake_qtr": convert_kuake_qtr,
        "cblue_cmid": convert_cmid,
        "cblue_imcs_v2_ner": convert_imcs_v2_ner,
        "cblue_imcs_v2_dac": convert_imcs_v2_dac,
        "cblue_imcs_v2_sr": convert_imcs_v2_sr,
        "cblue_imcs_v2_mrg": convert_imcs_v2_mrg,
        "bigbio_kb": convert_bigbio_kb,
        "bigbio_qa": convert_bigbio_qa,
        "bigbio_text": convert_bigbio_text,
        "bigbio_pairs": convert_bigbio_pairs,
        "bigbio_te": convert_bigbio_te,
        "bigbio_t2t": convert_bigbio_t2t,
    }
)

ALL_TASKS: tuple[Task, ...] = (
    "ner", "re", "ee", "tc", "tc_multilabel", "qa_yesno", "qa_mc", "qa_open", "dialogue", "translation",
    "text_pair", "sts", "generation",
)  # fmt: skip

# The instruction tasks each format's records can feed (a PubTator CDR file feeds NER and CID RE).
FORMAT_TASKS: Mapping[str, tuple[Task, ...]] = MappingProxyType(
    {
        "bio_tsv": ("ner",),
        "pubtator_cdr": ("re", "ner"),
        "cmeee": ("ner",),
        "cmeie": ("re", "ner"),
        "kuake_qic": ("tc",),
        "hoc_tsv": ("tc_multilabel",),
        "litcovid_csv": ("tc_multilabel",),
        "pubmedqa": ("qa_yesno",),
        "medqa_jsonl": ("qa_mc",),
        "medmcqa_jsonl": ("qa_mc",),
        "huatuo_qa_jsonl": ("qa_open",),
        "medical_dialogue_csv": ("qa_open",),
        "covid_similarity_csv": ("text_pair",),
        "liveqa_xml": ("qa_open",),
        "sharegpt_jsonl": ("dialogue",),
        "alpaca_json": ("dialogue",),
        "huatuo_sft_jsonl": ("dialogue",),
        "meddialog_txt": ("dialogue",),
        "unified_jsonl": ALL_TASKS,
        "taiyi_instruction": ("dialogue",),
        "cblue_cmeee": ("ner",),
        "cblue_cmeie": ("re", "ner"),
        "cblue_kuake_qic": ("tc",),
        "cblue_chip_cdee": ("ee",),
        "cblue_chip_cdn": ("generation",),
        "cblue_chip_ctc": ("tc",),
        "cblue_chip_sts": ("text_pair",),
        "cblue_kuake_qqr": ("text_pair",),
        "cblue_kuake_qtr": ("text_pair",),
        "cblue_cmid": ("tc",),
        "cblue_imcs_v2_ner": ("ner",),
        "cblue_imcs_v2_dac": ("tc",),
        "cblue_imcs_v2_sr": ("tc_multilabel",),
        "cblue_imcs_v2_mrg": ("generation",),
        # BigBIO: a kb document's own task is ee, re or ner (by what it holds), a QA item's by its type, a
        # text/pairs/t2t file's the first unless options (or the catalogue's task) say the second.
        "bigbio_kb": ("ner", "re", "ee"),
        "bigbio_qa": ("qa_yesno", "qa_mc", "qa_open"),
        "bigbio_text": ("tc", "tc_multilabel"),
        "bigbio_pairs": ("text_pair", "sts"),
        "bigbio_te": ("text_pair",),
        "bigbio_t2t": ("generation", "translation"),
    }
)

# The language of a format's records when the caller names none (MedQA: pass zh for MCMLE; MedDialog
# has an English and a Chinese release: pass zh for the Chinese one). Taiyi's instruction data is mostly
# Chinese; its items that name en or zh keep their own language.
CHINESE_FORMATS = (
    "cmeee",
    "cmeie",
    "kuake_qic",
    "taiyi_instruction",
    "huatuo_qa_jsonl",
    "huatuo_sft_jsonl",
    "medical_dialogue_csv",
    "covid_similarity_csv",
)
FORMAT_LANGUAGES: Mapping[str, Language] = MappingProxyType(
    {name: ("zh" if name in CHINESE_FORMATS or name.startswith("cblue_") else "en") for name in FORMATS}
)

__all__ = ["FORMATS", "FORMAT_LANGUAGES", "FORMAT_TASKS", "BadRecord", "Converter", "Source"]
