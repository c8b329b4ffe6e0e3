"""Data preparation with real parts: Ray Data for large catalogues, and an S3 endpoint for every read/write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taiyi_ray.config.data import DataConfig
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.data.convert import compute_stats, convert_file
from taiyi_ray.data.prepare import prepare_samples
from taiyi_ray.storage import Storage, join

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_ray_data_path_writes_what_the_in_process_path_writes(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    catalogue = load_catalogue("configs/catalogues/demo.yaml")
    config = DataConfig(
        catalogue="configs/catalogues/demo.yaml", decontaminate_against="configs/catalogues/demo-eval.yaml"
    )
    local = prepare_samples(catalogue, config, Storage(), str(tmp_path / "local"))
    parallel = prepare_samples(
        catalogue, config.model_copy(update={"parallel_min_bytes": 0}), Storage(), str(tmp_path / "ray")
    )
    assert parallel.parallel and not local.parallel
    assert [report.dataset for report in parallel.datasets] == [entry.name for entry in catalogue.datasets]
    for name in ("stage1", "stage2"):
        for one, two in zip(local.sample_files[name], parallel.sample_files[name], strict=True):
            assert Path(one).name == Path(two).name and Path(one).read_bytes() == Path(two).read_bytes()
    assert parallel.totals.samples == local.totals.samples == 53  # 41 task samples + 12 demo dialogues


def test_convert_and_prepare_through_s3(
    s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = Storage()
    demo = REPO / "taiyi_ray" / "data" / "demo_corpus"
    source = "s3://taiyi-test/sources/cdr/train.pubtator.txt"
    storage.write_bytes(source, (demo / "cdr" / "train.pubtator.txt").read_bytes())
    report = convert_file("pubtator_cdr", source, "s3://taiyi-test/converted/cdr.jsonl", "fail", storage)
    assert (report.records, report.rejects) == (4, 0)
    stats = compute_stats("s3://taiyi-test/converted/cdr.jsonl", storage)
    assert stats["relations"] == {"CID": 7} and stats["documents"] == 4
    broken = "s3://taiyi-test/sources/broken.tsv"
    storage.write_text(broken, "ok\tO\n\nbad\n")
    quarantined = convert_file(
        "bio_tsv", broken, "s3://taiyi-test/converted/broken.jsonl", "quarantine", storage
    )
    assert quarantined.rejects_path == "s3://taiyi-test/converted/broken.rejects.jsonl"
    assert json.loads(storage.read_text(quarantined.rejects_path))["line"] == 3
    catalogue_path = tmp_path / "s3.yaml"
    catalogue_path.write_text(
        f"name: s3\ndatasets:\n  - {{name: cdr, format: pubtator_cdr, uri: '{source}', language: en, task: re}}\n"
    )
    output = "s3://taiyi-test/prepared"
    result = prepare_samples(
        load_catalogue(str(catalogue_path)), DataConfig(catalogue=str(catalogue_path)), storage, output
    )
    assert result.sample_files["stage1"] == [join(output, "stage1", "cdr.jsonl")]
    assert len(storage.read_text(result.sample_files["stage1"][0]).splitlines()) == 4
    assert json.loads(storage.read_text(join(output, "prepare_report.json")))["totals"]["samples"] == 4
