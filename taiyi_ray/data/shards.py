"""Tokenized, packed Parquet shards in object storage, versioned by the hash of everything that made them.

A shard set lives at `{root}/{set}/v-{hash}/` with `shard-NNNNNN.parquet` files (zstd) and
`manifest.json`: per-file rows/bytes, totals, per-dataset shares, the tokenizer fingerprint and the
settings. Same inputs -> same hash -> nothing to do; changed inputs -> a new version directory, so a run
still reading the old one is never disturbed. The manifest is written last: a version without one is
incomplete and is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow.parquet as pq
from pydantic import Field, ValidationError

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.data import DataConfig
from taiyi_ray.data.plan import SourceFiles
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

SHARD_FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class ShardError(ValueError):
    """A shard set is missing, incomplete, corrupt or inconsistent; the message names the object."""


def shard_sets_root(storage_root: str, data: DataConfig) -> str:
    """Where `data.name`'s shard sets and tokenizers live: `{data.shards_root}/{data.name}`, by default
    `{storage.root}/shards/{data.name}` (the prepare_data job writes there, stages read there)."""
    return join(data.shards_root or join(storage_root, "shards"), data.name)


@dataclass(frozen=True)
class ShardSettings:
    """Everything besides the samples and tokenizer that changes the shard content."""

    chat_format: str
    max_seq_len: int
    packing: bool
    overlong: str
    rows_per_shard: int


class ShardFile(StrictModel):
    name: str
    rows: int
    bytes: int
    tokens: int


class DatasetShare(StrictModel):
    samples: int
    tokens: int
    share: float  # of the set's samples


class ShardTokenizer(StrictModel):
    fingerprint: str
    location: str


class ShardContents(StrictModel):
    """What the shard files of a version hold, read back from the files themselves."""

    files: list[ShardFile]
    rows: int
    samples: int
    tokens: int
    label_tokens: int
    truncated_samples: int
    packing_efficiency: float  # tokens / (rows x max_seq_len)
    datasets: dict[str, DatasetShare]


class ShardManifest(ShardContents):
    """`manifest.json` of a shard set version: what the data job wrote and a training stage reads.

    Written by `write_manifest` and read by `load_manifest` only; `manifest_sha256` covers every other
    key, so an edited manifest is refused. `version_dir` is where it was read from (not stored)."""

    format_version: int
    content_hash: str
    input_samples: int
    dropped_samples: int
    settings: ShardSettings
    tokenizer: ShardTokenizer
    sample_files: list[str]
    created_unix_s: int = 0
    manifest_sha256: str = ""
    version_dir: str = Field(default="", exclude=True)

    def source_files(self, weight: float = 1.0) -> SourceFiles:
        """The version's files and row counts, as the data plan takes them."""
        return SourceFiles(
            tuple(join(self.version_dir, entry.name) for entry in self.files),
            tuple(entry.rows for entry in self.files),
            weight,
        )


def content_hash(sample_file_hashes: list[str], tokenizer_fingerprint: str, settings: ShardSettings) -> str:
    payload = json.dumps(
        {
            "format": SHARD_FORMAT_VERSION,
            "samples": sample_file_hashes,
            "tokenizer": tokenizer_fingerprint,
            "settings": settings.__dict__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def file_sha256(storage: Storage, location: str) -> str:
    digest = hashlib.sha256()
    with storage.open(location, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest_digest(manifest: dict[str, Any]) -> str:
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def summarise_files(storage: Storage, version_dir: str, seq_len: int) -> ShardContents:
    """Read the small columns of every shard file and build the manifest body (files, totals, shares)."""
    files = [location for location in storage.list(version_dir) if location.endswith(".parquet")]
    entries, per_dataset_samples, per_dataset_tokens = [], Counter[str](), Counter[str]()
    rows = samples = tokens = label_tokens = truncated = 0
    for location in files:
        filesystem, path = storage.arrow(location)
        with filesystem.open_input_file(path) as handle:
            table = pq.read_table(
                handle,
                columns=["datasets", "sample_tokens", "num_tokens", "num_label_tokens", "truncated_samples"],
            )
            size = handle.size()
        for datasets, sample_tokens in zip(
            table.column("datasets").to_pylist(), table.column("sample_tokens").to_pylist(), strict=True
        ):
            per_dataset_samples.update(datasets)
            for dataset, count in zip(datasets, sample_tokens, strict=True):
                per_dataset_tokens[dataset] += count
        file_tokens = int(sum(table.column("num_tokens").to_pylist()))
        entries.append(
            ShardFile(name=location.rsplit("/", 1)[-1], rows=table.num_rows, bytes=size, tokens=file_tokens)
        )
        rows += table.num_rows
        samples += sum(len(item) for item in table.column("datasets").to_pylist())
        tokens += file_tokens
        label_tokens += int(sum(table.column("num_label_tokens").to_pylist()))
        truncated += int(sum(table.column("truncated_samples").to_pylist()))
    total_samples = max(samples, 1)
    return ShardContents(
        files=entries,
        rows=rows,
        samples=samples,
        tokens=tokens,
        label_tokens=label_tokens,
        truncated_samples=truncated,
        packing_efficiency=round(tokens / (rows * seq_len), 6) if rows else 0.0,
        datasets={
            name: DatasetShare(
                samples=per_dataset_samples[name],
                tokens=per_dataset_tokens[name],
                share=round(per_dataset_samples[name] / total_samples, 6),
            )
            for name in sorted(per_dataset_samples)
        },
    )


def write_manifest(storage: Storage, version_dir: str, manifest: ShardManifest) -> ShardManifest:
    """Stamp, digest and write `manifest.json` (last: a version without one is incomplete)."""
    body = manifest.model_dump(mode="json", exclude={"manifest_sha256"}) | {
        "created_unix_s": int(time.time())
    }
    body["manifest_sha256"] = _manifest_digest(body)
    storage.write_json(join(version_dir, MANIFEST), body)
    return ShardManifest.model_validate(body).model_copy(update={"version_dir": version_dir})


def resolve_version(storage: Storage, set_location: str) -> str:
    """A shard set location -> its version directory: itself if it holds a manifest, else the newest
    complete `v-*` version below it (by creation time)."""
    if storage.exists(join(set_location, MANIFEST)):
        return set_location
    if not storage.exists(set_location):
        raise ShardError(f"{set_location}: no shard set here (run the prepare_data job first)")
    versions = []
    for child in storage.list(set_location):
        name = child.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith("v-") and storage.exists(join(child, MANIFEST)):
            versions.append((storage.read_json(join(child, MANIFEST)).get("created_unix_s", 0), child))
    if not versions:
        raise ShardError(f"{set_location}: no complete version (v-*/manifest.json) found")
    return max(versions)[1]


def load_manifest(storage: Storage, version_dir: str, check_files: bool = True) -> ShardManifest:
    """Read and verify a manifest: its own digest and, when `check_files`, each file's presence and size."""
    location = join(version_dir, MANIFEST)
    if not storage.exists(location):
        raise ShardError(f"{location}: missing manifest (incomplete or not a shard set)")
    body = storage.read_json(location)
    if body.get("manifest_sha256") != _manifest_digest(body):
        raise ShardError(f"{location}: manifest digest does not match its content (edited or corrupt)")
    try:
        manifest = ShardManifest.model_validate(body).model_copy(update={"version_dir": version_dir})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise ShardError(f"{location}: not a shard manifest of this version ({problems})") from None
    if check_files:
        for entry in manifest.files:
            shard = join(version_dir, entry.name)
            filesystem, path = storage.arrow(shard)
            info = filesystem.get_file_info(path)
            if info.size is None or info.type.name != "File":
                raise ShardError(f"{shard}: listed in the manifest but missing")
            if info.size != entry.bytes:
                raise ShardError(
                    f"{shard}: {info.size} bytes, the manifest says {entry.bytes} (truncated or replaced)"
                )
    return manifest
