"""The typed contracts between stages: the shard manifest (data job -> training), the stage summary
(training -> export, pipeline) and the job results. Each is written and read in one place; these tests
pin what is on disk, since runs written by an earlier version must still be read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taiyi_ray.data.pack import pack_table
from taiyi_ray.data.shards import (
    MANIFEST,
    ShardError,
    ShardManifest,
    ShardSettings,
    ShardTokenizer,
    load_manifest,
    summarise_files,
    write_manifest,
)
from taiyi_ray.storage import Storage
from taiyi_ray.train.outputs import (
    MixShare,
    ScoreAt,
    StageSummary,
    ValidationCurveSummary,
    read_stage_summary,
    write_stage_summary,
)
from taiyi_ray.train.spec import ShardVersion

SEQ_LEN = 16


def tokenized(lengths: list[int], dataset: str) -> pa.Table:
    """Tokenized samples as the encoder writes them (only the columns packing reads)."""
    return pa.Table.from_pylist(
        [
            {
                "sample_id": f"{dataset}-{index}",
                "dataset": dataset,
                "input_ids": np.arange(length, dtype=np.int32),
                "labels": np.full(length, -100, dtype=np.int32),
                "num_tokens": length,
                "num_label_tokens": length // 2,
                "truncated": False,
            }
            for index, length in enumerate(lengths)
        ]
    )


def version_with_files(root: Path) -> Path:
    version = root / "v-test"
    version.mkdir()
    pq.write_table(
        pack_table(tokenized([5, 7, 9], "A"), SEQ_LEN, packing=True), version / "shard-000000.parquet"
    )
    pq.write_table(
        pack_table(tokenized([4, 16], "B"), SEQ_LEN, packing=True), version / "shard-000001.parquet"
    )
    return version


def written_manifest(version: Path) -> ShardManifest:
    contents = summarise_files(Storage(), str(version), SEQ_LEN)
    manifest = ShardManifest(
        **dict(contents),
        format_version=1,
        content_hash="c0ffee",
        input_samples=6,
        dropped_samples=6 - contents.samples,
        settings=ShardSettings("taiyi", SEQ_LEN, True, "truncate", 1024),
        tokenizer=ShardTokenizer(fingerprint="f" * 64, location="/tokenizers/t"),
        sample_files=["/samples/a.jsonl"],
    )
    return write_manifest(Storage(), str(version), manifest)


def test_the_manifest_counts_the_files_and_reads_back_as_written(tmp_path: Path) -> None:
    version = version_with_files(tmp_path)
    written = written_manifest(version)
    assert (written.rows, written.samples, written.tokens, written.dropped_samples) == (4, 5, 41, 1)
    assert written.label_tokens == 2 + 3 + 4 + 2 + 8
    assert written.packing_efficiency == pytest.approx(41 / (4 * SEQ_LEN))
    assert {name: share.samples for name, share in written.datasets.items()} == {"A": 3, "B": 2}
    loaded = load_manifest(Storage(), str(version))
    assert loaded == written and loaded.version_dir == str(version)
    sources = loaded.source_files(weight=2.0)
    assert sources.locations == (f"{version}/shard-000000.parquet", f"{version}/shard-000001.parquet")
    assert sum(sources.rows) == 4 and sources.weight == 2.0


def test_the_manifest_on_disk_keeps_its_keys_and_not_where_it_was_read_from(tmp_path: Path) -> None:
    version = version_with_files(tmp_path)
    written_manifest(version)
    on_disk = json.loads((version / MANIFEST).read_text())
    assert set(on_disk) == {
        "files", "rows", "samples", "tokens", "label_tokens", "truncated_samples", "packing_efficiency",
        "datasets", "format_version", "content_hash", "input_samples", "dropped_samples", "settings",
        "tokenizer", "sample_files", "created_unix_s", "manifest_sha256",
    }  # fmt: skip
    assert on_disk["settings"] == {
        "chat_format": "taiyi", "max_seq_len": SEQ_LEN, "packing": True, "overlong": "truncate",
        "rows_per_shard": 1024,
    }  # fmt: skip
    assert set(on_disk["files"][0]) == {"name", "rows", "bytes", "tokens"}


def test_a_manifest_without_a_field_is_refused_naming_the_file(tmp_path: Path) -> None:
    from taiyi_ray.data.shards import _manifest_digest

    version = version_with_files(tmp_path)
    written_manifest(version)
    body = json.loads((version / MANIFEST).read_text())
    del body["tokenizer"]
    body["manifest_sha256"] = _manifest_digest(body)  # consistent, but not a manifest of this version
    (version / MANIFEST).write_text(json.dumps(body))
    with pytest.raises(
        ShardError,
        match=rf"{version}/manifest.json: not a shard manifest of this version \(tokenizer: Field required\)",
    ):
        load_manifest(Storage(), str(version))


def stage_summary() -> StageSummary:
    curve = ValidationCurveSummary(
        metric="micro_f1", last=ScoreAt(step=8, score=40.0), best=ScoreAt(step=4, score=45.0)
    )
    return StageSummary(
        stage="stage1", steps=8, samples=64, tokens=4096, final_loss=1.5, tokens_per_s=100.0, mfu=None,
        restarts=1, resumed_from_step=4, data_fingerprint="d" * 64, first_loss=7.5,
        epoch_mean_losses=[3.0, 1.6], label_tokens=900, total_steps=8, steps_per_epoch=4, epochs=2,
        global_batch_size=8, num_workers=2, method="lora", zero_stage=2,
        realised_mix={"A": MixShare(samples=40, share=0.625), "B": MixShare(samples=24, share=0.375)},
        initial_trainable_l2=0.5, stopped_early=False, init_from=None, model_dir="/runs/s1/model",
        wall_time_s=12.5, shard_versions=[ShardVersion("/shards/v-1", "e" * 64)],
        validation={"KUAKE-QIC": curve}, validation_s=1.5, validation_share=0.12,
    )  # fmt: skip


def test_the_stage_summary_round_trips_through_summary_json(tmp_path: Path) -> None:
    summary = stage_summary()
    write_stage_summary(Storage(), str(tmp_path), summary)
    assert read_stage_summary(Storage(), str(tmp_path)) == summary
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    # the keys outside checks read from the stage's result line
    assert on_disk["first_loss"] == 7.5 and on_disk["final_loss"] == 1.5 and on_disk["restarts"] == 1
    assert on_disk["resumed_from_step"] == 4 and on_disk["stopped_early"] is False
    assert on_disk["shard_versions"] == [{"location": "/shards/v-1", "manifest_sha256": "e" * 64}]
    assert on_disk["validation"]["KUAKE-QIC"] == {
        "metric": "micro_f1", "last": {"step": 8, "score": 40.0}, "best": {"step": 4, "score": 45.0},
    }  # fmt: skip


def test_a_summary_with_a_misspelt_key_is_refused(tmp_path: Path) -> None:
    body = stage_summary().model_dump(mode="json")
    body["finall_loss"] = body.pop("final_loss")
    (tmp_path / "summary.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match="final_loss"):
        read_stage_summary(Storage(), str(tmp_path))


def test_the_checkpoint_state_keeps_the_position_and_the_pinned_shards(tmp_path: Path) -> None:
    from taiyi_ray.data.plan import DataPosition, Segment
    from taiyi_ray.train.checkpoint import STATE_FILE, CheckpointState, read_checkpoint_state

    position = DataPosition(epoch=1, segments=[Segment(2, 8, 3), Segment(3, 8, 1)], global_step=9)
    state = CheckpointState(
        position=position.to_dict(),
        world_size=3,
        record={"step": 9, "loss": 2.5},
        validation_s=4.0,
        shards=[ShardVersion("/shards/v-1", "e" * 64)],
    )
    (tmp_path / STATE_FILE).write_text(json.dumps(state.model_dump(mode="json")))
    read = read_checkpoint_state(Storage(), str(tmp_path))
    assert read == state and read.data_position() == position
    assert json.loads((tmp_path / STATE_FILE).read_text())["position"]["segments"] == [[2, 8, 3], [3, 8, 1]]
