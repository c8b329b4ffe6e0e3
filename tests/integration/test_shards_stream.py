"""Shard sets in object storage and the Ray Data stream: versioning, bad input, transient S3 errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.data.build_shards import build_shard_set
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.plan import DataPlan
from taiyi_ray.data.shards import MANIFEST, ShardError, ShardManifest, ShardSettings, load_manifest
from taiyi_ray.data.stream import RankStream
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer, tokenizer_fingerprint
from taiyi_ray.storage import Storage, join
from tests.conftest import free_port

pytestmark = pytest.mark.integration

SETTINGS = ShardSettings("taiyi", max_seq_len=96, packing=True, overlong="truncate", rows_per_shard=4)


def write_samples(path: Path, count: int, salt: str = "") -> str:
    with path.open("w") as handle:
        for index in range(count):
            messages = [
                {
                    "role": "user",
                    "content": f"Find the chemicals {salt}: sample {index} mentions aspirin and 阿司匹林.",
                },
                {"role": "assistant", "content": f"Chemical: aspirin; 阿司匹林 ({index})"},
            ]
            handle.write(
                json.dumps(
                    {
                        "id": f"s{index}",
                        "source_id": f"r{index}",
                        "dataset": "d",
                        "task": "ner",
                        "language": "en",
                        "messages": messages,
                    }
                )
                + "\n"
            )
    return str(path)


@pytest.fixture(scope="module")
def tokenizer_info(qwen2_tokenizer_dir: Path) -> tuple[str, str]:
    tokenizer = configure_tokenizer(load_tokenizer(qwen2_tokenizer_dir), get_chat_format("taiyi"))
    return str(qwen2_tokenizer_dir), tokenizer_fingerprint(tokenizer)


def stream_ids(storage: Storage, manifest: ShardManifest, epochs: int = 1) -> list[str]:
    plan = DataPlan([manifest.source_files()], seed=1)
    stream = RankStream(
        plan,
        storage,
        world=1,
        rank=0,
        micro_batch_size=1,
        accumulation=1,
        epochs=epochs,
        pad_id=0,
        prefetch_batches=1,
    )
    return [sample for step in stream for sample in step.sample_ids]


def test_same_inputs_reuse_the_version_and_changed_inputs_get_a_new_one(
    ray_cluster: None, tmp_path: Path, tokenizer_info: tuple[str, str]
) -> None:
    storage = Storage()
    samples = write_samples(tmp_path / "a.jsonl", 20)
    first = build_shard_set(storage, [samples], str(tmp_path / "set"), *tokenizer_info, SETTINGS)
    assert first.built and first.manifest.samples == 20 and first.manifest.dropped_samples == 0
    stamps = {path: path.stat().st_mtime_ns for path in Path(first.manifest.version_dir).iterdir()}
    again = build_shard_set(storage, [samples], str(tmp_path / "set"), *tokenizer_info, SETTINGS)
    assert not again.built and again.manifest.version_dir == first.manifest.version_dir
    assert {path: path.stat().st_mtime_ns for path in Path(first.manifest.version_dir).iterdir()} == stamps
    changed = build_shard_set(
        storage,
        [write_samples(tmp_path / "b.jsonl", 20, salt="x")],
        str(tmp_path / "set"),
        *tokenizer_info,
        SETTINGS,
    )
    assert changed.built and changed.manifest.version_dir != first.manifest.version_dir
    assert load_manifest(storage, first.manifest.version_dir).rows == first.manifest.rows  # untouched
    # every file is a complete Parquet file with the rows the manifest says
    for entry in changed.manifest.files:
        assert pq.read_metadata(join(changed.manifest.version_dir, entry.name)).num_rows == entry.rows


@pytest.fixture()
def local_set(ray_cluster: None, tmp_path: Path, tokenizer_info: tuple[str, str]) -> ShardManifest:
    return build_shard_set(
        Storage(), [write_samples(tmp_path / "s.jsonl", 30)], str(tmp_path / "set"), *tokenizer_info, SETTINGS
    ).manifest


def test_truncated_shard_is_refused_before_training(local_set: ShardManifest) -> None:
    shard = Path(local_set.version_dir) / local_set.files[0].name
    shard.write_bytes(shard.read_bytes()[:-20])
    with pytest.raises(
        ShardError, match=rf"{shard.name}: \d+ bytes, the manifest says \d+ \(truncated or replaced\)"
    ):
        load_manifest(Storage(), local_set.version_dir)


def test_missing_shard_and_edited_manifest_are_refused(local_set: ShardManifest) -> None:
    version = Path(local_set.version_dir)
    manifest = json.loads((version / MANIFEST).read_text())
    manifest["rows"] += 1
    (version / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="manifest digest does not match"):
        load_manifest(Storage(), str(version))
    manifest["rows"] -= 1
    (version / MANIFEST).write_text(json.dumps(manifest))
    (version / local_set.files[-1].name).unlink()
    with pytest.raises(ShardError, match=f"{local_set.files[-1].name}: listed in the manifest but missing"):
        load_manifest(Storage(), str(version))


def test_corrupt_shard_of_the_right_size_fails_the_stream_naming_it(local_set: ShardManifest) -> None:
    shard = Path(local_set.version_dir) / local_set.files[0].name
    data = bytearray(shard.read_bytes())
    data[-8:-4] = b"\xff\xff\xff\x00"  # a footer length past the file start; the size is unchanged
    shard.write_bytes(bytes(data))
    with pytest.raises(Exception, match=rf"{shard.name}: cannot read shard"):
        stream_ids(Storage(), local_set)


def test_a_different_tokenizer_is_refused(local_set: ShardManifest, tmp_path: Path) -> None:
    from taiyi_ray.config.model import ModelConfig
    from taiyi_ray.data.tokenizer import save_tokenizer, train_bpe_tokenizer
    from taiyi_ray.train.job import check_tokenizer

    other = save_tokenizer(train_bpe_tokenizer(["aspirin causes bleeding"] * 20, 300), tmp_path / "other")
    with pytest.raises(ShardError, match="differs from the tokenizer the shards were made with"):
        check_tokenizer(ModelConfig(tokenizer=str(other), chat_format="taiyi"), local_set.tokenizer)


def test_stream_survives_the_s3_server_going_away_and_coming_back(
    ray_cluster: None, tmp_path: Path, tokenizer_info: tuple[str, str]
) -> None:
    """Stop the S3 endpoint mid-stream and restart it on the same port: reads are retried with backoff
    and the stream delivers exactly the samples of an uninterrupted one."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1").create_bucket(
        Bucket="taiyi-flaky"
    )
    storage = Storage(StorageConfig(endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1"))
    manifest = build_shard_set(
        storage, [write_samples(tmp_path / "s.jsonl", 40)], "s3://taiyi-flaky/set", *tokenizer_info, SETTINGS
    ).manifest
    assert len(manifest.files) >= 4
    expected = stream_ids(storage, manifest, epochs=4)
    # The server goes away just as the stream starts (Ray Data reads ahead eagerly, so an outage later
    # could miss every read) and comes back 3 s later: the first reads fail and must be retried.
    server.stop()
    servers = [server]

    def restart() -> None:
        time.sleep(3.0)
        servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port))
        servers[-1].start()

    threading.Thread(target=restart, daemon=True).start()
    started = time.monotonic()
    try:
        assert stream_ids(storage, manifest, epochs=4) == expected
        assert time.monotonic() - started >= 3.0 and len(servers) == 2  # it really waited out the outage
    finally:
        servers[-1].stop()
