"""The `data` section and the dataset catalogue files it points at."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from taiyi_ray.config.base import Location, StrictModel

Language = Literal["en", "zh"]
Task = Literal[
    "ner",
    "re",
    "ee",
    "tc",
    "tc_multilabel",
    "qa_yesno",
    "qa_mc",
    "qa_open",
    "dialogue",
    "translation",
    "text_pair",
    "sts",
    "generation",
]
"""The instruction tasks. `ee` event extraction (trigger + typed arguments); `text_pair` a label for a
pair of texts (similarity class, entailment); `sts` a continuous similarity score for a pair (BIOSSES);
`generation` text to text (summarisation, report and title generation, text to structure)."""
Metric = Literal["micro_f1", "accuracy", "rouge_l", "bleu", "chrf", "distinct_2", "pearson", "spearman"]
"""What an evaluation set is reported by (fractions; `taiyi_ray.eval.scoring`): micro_f1 and accuracy for
extraction, classification and QA; rouge_l, bleu, chrf, distinct_2 for generated text; pearson, spearman
for similarity scores (`taiyi_ray.eval.text_metrics` says how each is computed)."""


class DatasetEntry(StrictModel):
    """One dataset of a catalogue: where its file is, how to read it, and how it is used.

    `format` names a converter of `taiyi_ray.data.formats` (bio_tsv, pubtator_cdr, cmeee, ...).
    `task` is the instruction task built from its records: a PubTator file can feed `ner` (optionally
    restricted to `entity_types`) or `re`. `stage` says whether a training set joins stage 1 (and so
    stage 2, which re-uses all stage-1 data) or stage 2 only. `max_samples` caps records after a seeded
    shuffle (Taiyi capped most sets at 10k). `metric` and `eval_unit` are for evaluation catalogues.

    The answer vocabulary the prompt offers and the parser accepts: `entity_types` (NER; also filters the
    records' entities), `relation_types` (RE), `event_types` (EE;
    default: the types of the record's events) and `label_names` (classification). Each defaults to the
    format's own vocabulary where it has one (`taiyi_ray.data.answers.vocabulary`); a BIO file names no
    types, so a `bio_tsv` NER entry must list them. `max_input_chars` bounds the passage put in one
    prompt (default per language in `taiyi_ray.data.instruct`): longer NER/RE documents are split into
    windows for training, longer QA contexts and classification texts are cut (both counted by
    `data prepare`).
    """

    name: str = Field(min_length=1)
    format: str = Field(min_length=1)
    uri: Location
    language: Language
    task: Task
    split: str = "train"
    stage: Literal[1, 2] = 1
    max_samples: int | None = Field(None, ge=1)
    entity_types: list[str] | None = None
    relation_types: list[str] | None = None
    label_names: list[str] | None = None
    event_types: list[str] | None = None
    max_input_chars: int | None = Field(None, ge=64, description="Characters of passage per prompt.")
    metric: Metric | None = None
    eval_unit: str | None = None
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    unlabelled: bool = Field(
        False,
        description="The file carries no gold (a test split): records without a label are read, not refused.",
    )


class Catalogue(StrictModel):
    """A YAML list of datasets (`configs/catalogues/*.yaml`, `configs/eval-13.yaml`)."""

    name: str = Field(min_length=1)
    description: str = ""
    datasets: list[DatasetEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> Catalogue:
        seen: set[str] = set()
        for entry in self.datasets:
            if entry.name in seen:
                raise ValueError(f"dataset name {entry.name!r} appears twice; names must be unique")
            seen.add(entry.name)
        return self


class BigBioLoader(StrictModel):
    """A BigBIO loader: the hub dataset (`bigbio/<dataset>`) and the config whose export is converted."""

    dataset: str = Field(min_length=1)
    config: str = Field(pattern=r"_bigbio_(kb|qa|text|pairs|te|t2t)$")


class InventoryEntry(StrictModel):
    """One dataset of an inventory (`configs/catalogues/taiyi-140.yaml`, Taiyi's 140): what it is, where
    it is distributed, and how taiyi-ray reads it. Keyed by (language, number): one name appears twice.

    `format` names the converter that reads the distribution (its original format, or the export of its
    BigBIO loader named in `bigbio`); null when no converter reads it yet (`note` says what it would need).
    `task` is the instruction task its records feed; `taiyi_task` and `family` are Taiyi's own labels.
    """

    language: Language
    number: int = Field(ge=1)
    name: str = Field(min_length=1)
    taiyi_task: str = Field(min_length=1)
    family: str = Field(min_length=1)
    task: Task
    stage: Literal[1, 2]
    format: str | None = None
    bigbio: BigBioLoader | None = None
    sizes: str = ""
    instruction_samples: int | None = Field(None, ge=0)
    licence: str = Field(min_length=1)
    obtain: str = Field(min_length=1, description="Where the files are distributed (URL).")
    note: str = ""

    @model_validator(mode="after")
    def _bigbio_is_read_by_its_schema(self) -> InventoryEntry:
        if self.bigbio is not None and self.format != "bigbio_" + self.bigbio.config.rsplit("_bigbio_", 1)[1]:
            raise ValueError(
                f"bigbio config {self.bigbio.config!r} is read by format bigbio_<schema>, not {self.format!r}"
            )
        return self


class Inventory(StrictModel):
    """A list of datasets to account for (not to train on): what `taiyi-ray data coverage` reports."""

    name: str = Field(min_length=1)
    description: str = ""
    datasets: list[InventoryEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_keys(self) -> Inventory:
        seen: set[tuple[str, int]] = set()
        for entry in self.datasets:
            key = (entry.language, entry.number)
            if key in seen:
                raise ValueError(
                    f"dataset ({entry.language}, {entry.number}) appears twice; keys must be unique"
                )
            seen.add(key)
        return self


class DataConfig(StrictModel):
    """Data preparation: convert -> instruct -> tokenize -> pack -> Parquet shards.

    Shards go to `{shards_root}/{name}/{stage set}/v-{hash}/` (default shards_root: `{storage.root}/shards`);
    the same inputs map to the same hash, so re-running does nothing, and changed inputs get a new
    version instead of overwriting one a training run may be reading.
    """

    name: str = Field("demo", pattern=r"^[A-Za-z0-9._-]+$")
    catalogue: Location
    shards_root: Location | None = None
    decontaminate_against: Location | None = Field(
        None,
        description="An evaluation catalogue; training records matching its items are removed (counted).",
    )
    decontamination: Literal["remove", "refuse"] = "remove"
    on_error: Literal["fail", "quarantine"] = "fail"
    template_seed: int = 0
    max_seq_len: int = Field(1024, ge=16, description="Tokens per training sample, and per packed row.")
    overlong: Literal["truncate", "drop"] = Field(
        "truncate",
        description="A sample longer than max_seq_len: cut its answer tail, or drop it (counted either way).",
    )
    packing: bool = True
    rows_per_shard: int = Field(4096, ge=1)
    parallel_min_bytes: int = Field(
        64 * 2**20,
        ge=0,
        description="`data prepare` converts datasets in parallel with Ray Data when the catalogue's files hold "
        "at least this many bytes in all; smaller catalogues (the demo) run in-process, with no Ray start-up.",
    )
    tokenize_batch_size: int = Field(256, ge=1)
