"""Storage on local paths and on a real S3 endpoint (moto's server on 127.0.0.1), through s3fs and
pyarrow exactly as the production code reaches S3."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.storage import Storage, join, parent


def exercise(storage: Storage, root: str, tmp_path: Path) -> None:
    storage.write_json(join(root, "a", "doc.json"), {"x": 1, "name": "阿司匹林"})
    assert storage.read_json(join(root, "a", "doc.json")) == {"x": 1, "name": "阿司匹林"}
    assert storage.exists(join(root, "a", "doc.json"))
    assert not storage.exists(join(root, "a", "missing.json"))
    storage.write_text(join(root, "a", "b.txt"), "hello")
    assert [item.rsplit("/", 1)[-1] for item in storage.list(join(root, "a"))] == ["b.txt", "doc.json"]
    # pyarrow filesystem: write and read a Parquet file through the same config
    filesystem, path = storage.arrow(join(root, "p", "t.parquet"))
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(pa.table({"v": [1, 2, 3]}), path, filesystem=filesystem)
    assert pq.read_table(path, filesystem=filesystem).column("v").to_pylist() == [1, 2, 3]
    # directory upload / download round trip
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "f.bin").write_bytes(b"\x00\x01")
    (source / "g.txt").write_text("g")
    storage.upload_dir(source, join(root, "dir"))
    copy = storage.download_dir(join(root, "dir"), tmp_path / "copy")
    assert (Path(copy) / "sub" / "f.bin").read_bytes() == b"\x00\x01"
    assert (Path(copy) / "g.txt").read_text() == "g"
    storage.remove(join(root, "dir"))
    assert not storage.exists(join(root, "dir", "g.txt"))


def test_local_storage(tmp_path: Path) -> None:
    exercise(Storage(), str(tmp_path / "root"), tmp_path)


def test_s3_storage_on_a_real_endpoint(s3_endpoint: str, tmp_path: Path) -> None:
    storage = Storage(
        StorageConfig(root="s3://taiyi-test/unit", endpoint_url=s3_endpoint, region="us-east-1")
    )
    exercise(storage, "s3://taiyi-test/unit", tmp_path)


def test_s3_endpoint_from_environment(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    storage = Storage(StorageConfig(root="s3://taiyi-test/env"))
    storage.write_text("s3://taiyi-test/env/x.txt", "via env")
    assert storage.read_text("s3://taiyi-test/env/x.txt") == "via env"


def test_uri_helpers() -> None:
    assert join("s3://bucket", "a", "b") == "s3://bucket/a/b"
    assert join("s3://bucket/p/", "x") == "s3://bucket/p/x"
    assert parent("s3://bucket/p/x") == "s3://bucket/p"
    assert join("/tmp/a", "b") == "/tmp/a/b"


def test_transient_object_store_errors_are_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from taiyi_ray import storage as storage_module

    sleeps: list[float] = []
    monkeypatch.setattr(storage_module.time, "sleep", sleeps.append)
    calls = iter([OSError("AWS Error NETWORK_CONNECTION: Could not connect to server")] * 3 + ["ok"])

    def flaky() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert storage_module.with_retries(flaky, "s3://b/k") == "ok"
    assert sleeps == [0.5, 1.0, 2.0]
    with pytest.raises(OSError, match="No such file"):
        storage_module.with_retries(lambda: (_ for _ in ()).throw(OSError("No such file")), "x")
    assert sleeps == [0.5, 1.0, 2.0]  # a permanent error is not retried


def test_missing_credentials_fail_at_once_naming_what_was_looked_for(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taiyi_ray.storage import StorageAccessError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata request off loopback
    storage = Storage(StorageConfig(endpoint_url=s3_endpoint, region="us-east-1"))
    with pytest.raises(StorageAccessError) as refused:
        storage.check_access("s3://taiyi-test/unit/run", "worker on node 127.0.0.1")
    message = str(refused.value)
    assert message.startswith("worker on node 127.0.0.1: cannot reach s3://taiyi-test/unit/run: ")
    assert "AWS_ACCESS_KEY_ID (unset), AWS_SECRET_ACCESS_KEY (unset)" in message
    assert "instance profile (disabled by AWS_EC2_METADATA_DISABLED)" in message
    Storage().check_access(str(tmp_path), "worker")  # local paths need no credentials


def test_present_credentials_pass_the_check(s3_endpoint: str) -> None:
    Storage(StorageConfig(endpoint_url=s3_endpoint, region="us-east-1")).check_access(
        "s3://taiyi-test/unit/run", "worker"
    )


def _fetch_in_another_process(config: StorageConfig, location: str, out: Path) -> None:
    out.write_text(Storage(config).cached_dir(location, str(out.parent)))


def test_node_cache_downloads_once_for_two_processes_and_reuses_it(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing

    from taiyi_ray.storage import NodeCache
    from tests.conftest import s3_request_log

    prefix = f"taiyi-test/node-cache-{tmp_path.name}"
    remote = Storage(StorageConfig(endpoint_url=s3_endpoint, region="us-east-1"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"w" * 3_000_000)
    (tmp_path / "model" / "config.json").write_text("{}")
    remote.upload_dir(tmp_path / "model", f"s3://{prefix}/base")
    config = StorageConfig(
        endpoint_url=s3_endpoint, region="us-east-1", cache_dir=str(tmp_path / "cache"), cache_max_gib=1
    )
    context = multiprocessing.get_context("spawn")
    outputs = [tmp_path / f"out-{index}" for index in range(2)]
    with s3_request_log() as requests:
        workers = [
            context.Process(target=_fetch_in_another_process, args=(config, f"s3://{prefix}/base", out))
            for out in outputs
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
            assert worker.exitcode == 0
        first = requests.gets(f"{prefix}/base/model.safetensors")
        again = Storage(config).cached_dir(f"s3://{prefix}/base", str(tmp_path))  # a restart on this node
    assert first == 1 and requests.gets(f"{prefix}/base/model.safetensors") == 1
    entries = {out.read_text() for out in outputs} | {again}
    assert len(entries) == 1 and Path(again).parent == tmp_path / "cache"
    assert (Path(again) / "model.safetensors").read_bytes() == b"w" * 3_000_000

    # A changed object is a new entry (never served stale); over the budget, the older entry goes,
    # and a partial download a crash left behind is cleaned.
    (tmp_path / "model" / "model.safetensors").write_bytes(b"v" * 3_000_000)
    remote.upload_dir(tmp_path / "model", f"s3://{prefix}/base")
    (tmp_path / "cache" / "0123abcd.partial").mkdir()
    monkeypatch.setattr(NodeCache, "IN_USE_S", 0.0)
    small = config.model_copy(update={"cache_max_gib": 4_000_000 / 1024**3})
    changed = Storage(small).cached_dir(f"s3://{prefix}/base", str(tmp_path))
    assert changed != again and (Path(changed) / "model.safetensors").read_bytes() == b"v" * 3_000_000
    assert sorted(path.name for path in (tmp_path / "cache").iterdir() if path.is_dir()) == [
        Path(changed).name
    ]
