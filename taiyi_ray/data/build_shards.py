"""Instruction-sample JSONL -> tokenized, packed Parquet shard set, as one streaming Ray Data pipeline:
`read_json -> map_batches(SampleTokenizer) -> map_batches(RowPacker) -> write_parquet`.

Tokenization runs in an actor pool (each actor loads the tokenizer once); packing works on windows of
`pack_window` samples (best-fit decreasing inside a window loses well under 1% against a global packing,
and keeps the pipeline streaming instead of shuffling every sample to one place).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.json as pajson

from taiyi_ray.data.encode_samples import SampleTokenizer
from taiyi_ray.data.pack import RowPacker
from taiyi_ray.data.shards import (
    ShardError,
    ShardManifest,
    ShardSettings,
    ShardTokenizer,
    content_hash,
    file_sha256,
    load_manifest,
    summarise_files,
    write_manifest,
)
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

PACK_WINDOW = 8192


@dataclass(frozen=True)
class ShardBuild:
    manifest: ShardManifest
    built: bool  # False: an identical version existed and was reused


@contextmanager
def ordered_execution() -> Iterator[None]:
    """Datasets created inside keep block order (deterministic content and order), without progress bars."""
    from ray.data import DataContext

    context = DataContext.get_current()
    previous = context.execution_options.preserve_order, context.enable_progress_bars
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # per-operator bars flood the driver log from every worker
    try:
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = previous


class _TableTokenizer(SampleTokenizer):
    """SampleTokenizer fed with pyarrow batches (messages arrive as list<struct<role, content>>)."""

    def __call__(self, batch: pa.Table) -> pa.Table:  # type: ignore[override]
        return super().__call__(
            {
                "id": batch.column("id").to_pylist(),
                "dataset": batch.column("dataset").to_pylist(),
                "messages": batch.column("messages").to_pylist(),
            }
        )


def _shard_names():
    from ray.data.datasource import FilenameProvider

    class ShardNames(FilenameProvider):
        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"shard-{task_index:06d}-{{i}}.parquet"

    return ShardNames()


def build_shard_set(
    storage: Storage,
    sample_files: list[str],
    set_location: str,
    tokenizer_dir: str,
    tokenizer_fingerprint: str,
    settings: ShardSettings,
    tokenize_batch_size: int = 256,
    tokenizer_actors: int = 2,
) -> ShardBuild:
    """Build (or reuse) the shard version of `sample_files` under `set_location`."""
    import ray.data
    from ray.data import ActorPoolStrategy, SaveMode

    if not sample_files:
        raise ShardError(f"{set_location}: no sample files to shard")
    digest = content_hash(
        [file_sha256(storage, location) for location in sample_files], tokenizer_fingerprint, settings
    )
    version_dir = join(set_location, f"v-{digest[:16]}")
    try:
        manifest = load_manifest(storage, version_dir)
        log.info("shards up to date: %s (%d rows)", version_dir, manifest.rows)
        return ShardBuild(manifest, built=False)
    except ShardError:
        storage.remove(version_dir)  # an incomplete earlier attempt, if any
    input_samples = sum(_count_lines(storage, location) for location in sample_files)
    filesystem, _ = storage.arrow(sample_files[0])
    paths = [storage.arrow(location)[1] for location in sample_files]
    with ordered_execution():
        # pyarrow's JSON reader takes JSON Lines; big blocks so that a long document never straddles one.
        dataset = ray.data.read_json(
            paths, filesystem=filesystem, read_options=pajson.ReadOptions(block_size=64 << 20)
        )
        dataset = dataset.map_batches(
            _TableTokenizer,
            fn_constructor_kwargs={
                "tokenizer_dir": tokenizer_dir,
                "chat_format": settings.chat_format,
                "max_seq_len": settings.max_seq_len,
                "overlong": settings.overlong,
                "storage": storage,
            },
            batch_size=tokenize_batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=tokenizer_actors),
        )
        dataset = dataset.map_batches(
            RowPacker,
            fn_constructor_kwargs={"seq_len": settings.max_seq_len, "packing": settings.packing},
            batch_size=PACK_WINDOW,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=1),
        )
        out_filesystem, out_path = storage.arrow(version_dir)
        dataset.write_parquet(
            out_path,
            filesystem=out_filesystem,
            filename_provider=_shard_names(),
            min_rows_per_file=settings.rows_per_shard,
            max_rows_per_file=settings.rows_per_shard,
            compression="zstd",
            mode=SaveMode.OVERWRITE,  # the version directory is new; names need no write uuid
        )
    contents = summarise_files(storage, version_dir, settings.max_seq_len)
    manifest = ShardManifest(
        **dict(contents),
        format_version=1,
        content_hash=digest,
        input_samples=input_samples,
        dropped_samples=input_samples - contents.samples,
        settings=settings,
        tokenizer=ShardTokenizer(fingerprint=tokenizer_fingerprint, location=tokenizer_dir),
        sample_files=sample_files,
    )
    manifest = write_manifest(storage, version_dir, manifest)
    log.info(
        "wrote %s: %d rows, %d samples, %d tokens, packing efficiency %.4f",
        version_dir,
        manifest.rows,
        manifest.samples,
        manifest.tokens,
        manifest.packing_efficiency,
    )
    return ShardBuild(manifest, built=True)


def _count_lines(storage: Storage, location: str) -> int:
    with storage.open(location, "rb") as handle:
        return sum(1 for line in handle if line.strip())
