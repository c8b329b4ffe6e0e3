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
Metric = Literal["micro_f1", "accuracy"]


class DatasetEntry(StrictModel):
    """One dataset of a catalogue: where its file is, how to read it, and how it is used.

    `format` names a converter of `taiyi_ray.data.formats` (bio_tsv, pubtator_cdr, cmeee, ...).
    `task` is the instruction task built from its records: a PubTator file can feed `ner` (optionally
    restricted to `entity_types`) or `re`. `stage` says whether a training set joins stage 1 (and so
    stage 2, which re-uses all stage-1 data) or stage 2 only. `max_samples` caps records after a seeded
    shuffle (Taiyi capped most sets at 10k). `metric` and `eval_unit` are for evaluation catalogues.

    The answer vocabulary the prompt offers and the parser accepts: `entity_types` (NER; also filters the
    records' entities), `relation_types` (RE) and `label_names` (classification). Each defaults to the
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
