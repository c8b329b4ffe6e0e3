"""The prepare_data job: catalogue -> instruction samples -> tokenized, packed shard sets per stage.

Writes the samples and a report into the run dir, and the shard sets (content-addressed, reused when
nothing changed) under `{shards_root}/{data.name}/{stage1,stage2}/v-*/`, next to the tokenizer they
were made with (`tokenizer-{fingerprint}/`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterator

from transformers import PreTrainedTokenizerFast

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.jobs import DataJobConfig
from taiyi_ray.config.model import ModelConfig
from taiyi_ray.data.build_shards import build_shard_set
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.prepare import prepare_samples
from taiyi_ray.data.shards import DatasetShare, ShardManifest, ShardSettings, shard_sets_root
from taiyi_ray.data.tokenizer import (
    configure_tokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_fingerprint,
    train_bpe_tokenizer,
)
from taiyi_ray.runtime import init_ray
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)


class ShardSetResult(StrictModel):
    """One shard set the job wrote or reused (its manifest's figures)."""

    version_dir: str
    built: bool  # False: an identical version existed and was reused
    rows: int
    samples: int
    tokens: int
    label_tokens: int
    packing_efficiency: float
    truncated_samples: int
    dropped_samples: int
    datasets: dict[str, DatasetShare]

    @classmethod
    def of(cls, manifest: ShardManifest, built: bool) -> ShardSetResult:
        fields = manifest.model_dump(include=set(cls.model_fields) - {"version_dir", "built"})
        return cls(version_dir=manifest.version_dir, built=built, **fields)


class TokenizerSummary(StrictModel):
    location: str
    fingerprint: str
    vocab: int


class DataJobResult(StrictModel):
    """The prepare_data job's `summary.json` and result line (`shard_sets.<set>.rows` is read by checks)."""

    run_dir: str
    records: int
    rejects: int
    decontaminated: int
    samples: int
    packing_efficiency: float  # over every shard set
    tokenizer: TokenizerSummary
    shard_sets: dict[str, ShardSetResult]


def _sample_texts(storage: Storage, files: list[str]) -> Iterator[str]:
    for location in files:
        with storage.open(location, "rt", encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    for message in json.loads(line)["messages"]:
                        yield message["content"]


def resolve_tokenizer(
    model: ModelConfig, storage: Storage, sample_files: list[str], scratch: str
) -> PreTrainedTokenizerFast:
    """The configured tokenizer, the base model's, or (neither given) a BPE trained on the samples."""
    chat_format = get_chat_format(model.chat_format)
    if model.tokenizer is not None:
        tokenizer = load_tokenizer(storage.download_dir(model.tokenizer, f"{scratch}/tokenizer"))
    elif model.base is not None:
        tokenizer = load_tokenizer(storage.download_dir(model.base, f"{scratch}/base"))
    else:
        log.info(
            "no tokenizer configured: training a byte-level BPE of %d tokens on the samples",
            model.trained_vocab_size,
        )
        tokenizer = train_bpe_tokenizer(_sample_texts(storage, sample_files), model.trained_vocab_size)
    return configure_tokenizer(tokenizer, chat_format)


def run_data_job(config: DataJobConfig, run_dir: str) -> DataJobResult:
    """Prepare, tokenize and shard; returns the job's figures (incl. packing efficiency per set)."""
    storage = Storage(config.storage)
    data = config.data
    catalogue = load_catalogue(data.catalogue)
    prepared = prepare_samples(catalogue, data, storage, join(run_dir, "samples"), progress=True)
    log.info("prepared samples:\n%s", prepared.table())
    all_files = [location for files in prepared.sample_files.values() for location in files]
    set_root = shard_sets_root(config.storage.root, data)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = resolve_tokenizer(config.model, storage, all_files, scratch)
        fingerprint = tokenizer_fingerprint(tokenizer)
        tokenizer_location = join(set_root, f"tokenizer-{fingerprint[:16]}")
        if not storage.exists(join(tokenizer_location, "tokenizer.json")):
            storage.upload_dir(save_tokenizer(tokenizer, f"{scratch}/tokenizer-out"), tokenizer_location)
    settings = ShardSettings(
        chat_format=config.model.chat_format,
        max_seq_len=data.max_seq_len,
        packing=data.packing,
        overlong=data.overlong,
        rows_per_shard=data.rows_per_shard,
    )
    init_ray(config.ray)
    shard_sets: dict[str, ShardSetResult] = {}
    for set_name, files in prepared.sample_files.items():
        if not files:
            continue
        build = build_shard_set(
            storage,
            files,
            join(set_root, set_name),
            tokenizer_location,
            fingerprint,
            settings,
            data.tokenize_batch_size,
        )
        shard_sets[set_name] = ShardSetResult.of(build.manifest, build.built)
    rows = sum(item.rows for item in shard_sets.values())
    tokens = sum(item.tokens for item in shard_sets.values())
    summary = DataJobResult(
        run_dir=run_dir,
        records=prepared.totals.records,
        rejects=prepared.totals.rejects,
        decontaminated=prepared.totals.decontaminated,
        samples=prepared.totals.samples,
        packing_efficiency=round(tokens / (rows * data.max_seq_len), 6) if rows else 0.0,
        tokenizer=TokenizerSummary(
            location=tokenizer_location, fingerprint=fingerprint, vocab=len(tokenizer)
        ),
        shard_sets=shard_sets,
    )
    storage.write_json(join(run_dir, "summary.json"), summary.model_dump(mode="json"))
    return summary
