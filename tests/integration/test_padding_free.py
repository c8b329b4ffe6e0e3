"""Padding-free micro-batches on the real training path (issue 12): what flash attention would see on a
GPU, the same first-step loss with and without packing through jobs/stage1.py on the backends that run
on CPU, one compiled graph over two epochs, and ZeRO-2 with the optimizer offloaded to DeepSpeed's CPU Adam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

from taiyi_ray.config.jobs import PipelineJobConfig
from taiyi_ray.data.shards import ShardManifest, load_manifest
from taiyi_ray.data.stream import STREAM_COLUMNS, flatten
from taiyi_ray.storage import Storage
from tests.integration.helpers import REPO_ROOT, TEST_CONFIG, config_for, s3_root

pytestmark = pytest.mark.integration


def stage1_manifest(prepared: dict[str, Any]) -> tuple[Storage, ShardManifest]:
    config: PipelineJobConfig = prepared["config"]
    storage = Storage(config.storage)
    return storage, load_manifest(storage, prepared["summary"]["shard_sets"]["stage1"]["version_dir"])


def test_flash_attention_sees_exactly_our_sample_boundaries(shared_shards: dict[str, Any]) -> None:
    """transformers' own helper turns a flattened micro-batch's position ids into flash attention's
    cu_seqlens: on real packed rows of the shared training files they are exactly the samples' bounds,
    and with a fixed token count (torch.compile) the padding only adds blocks after them."""
    storage, manifest = stage1_manifest(shared_shards)
    seq_len = manifest.settings.max_seq_len
    filesystem, path = storage.arrow(manifest.source_files().locations[0])
    table = pq.read_table(path, filesystem=filesystem, columns=[*STREAM_COLUMNS, "sample_tokens"])
    checked = 0
    for start in range(0, min(table.num_rows, 64), 4):
        rows = table.slice(start, 4)
        lengths = [length for row in rows.column("sample_tokens").to_pylist() for length in row]
        bounds = [0, *np.cumsum(lengths).tolist()]
        (cu_seqlens, _), (longest, _) = prepare_fa_kwargs_from_position_ids(flatten(rows, 0)["position_ids"])
        assert cu_seqlens.tolist() == bounds and int(longest) == max(lengths)
        fixed = flatten(rows, 0, token_count=4 * seq_len, pad_block=seq_len)
        (padded, _), _ = prepare_fa_kwargs_from_position_ids(fixed["position_ids"])
        assert padded.tolist()[: len(bounds)] == bounds and int(padded[-1]) == 4 * seq_len
        assert all(0 < size <= seq_len for size in np.diff(padded.tolist()[len(bounds) - 1 :]))
        checked += len(lengths)
    assert checked > 100 and table.num_rows >= 64  # real packed rows: several samples per row


@pytest.fixture(scope="module")
def unpacked_shards(ray_cluster: None, prepared_shards: dict[str, Any]) -> dict[str, Any]:
    """The demo corpus prepared again with data.packing=false: every sample its own row."""
    from taiyi_ray.config.jobs import DataJobConfig
    from taiyi_ray.data.job import run_data_job

    root = s3_root("unpacked")
    config = config_for(
        root, f"model.tokenizer={prepared_shards['config'].model.tokenizer}", "data.packing=false"
    )
    data_config = DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=config.data)
    return {"root": root, "summary": run_data_job(data_config, f"{root}/runs/data").model_dump(mode="json")}


def first_step_loss(
    prepared: dict[str, Any], tokenizer: str, backend: str, packing: bool
) -> tuple[float, int]:
    """`python jobs/stage1.py` as a user runs it, joined to the test cluster: full fine-tuning in fp32 on
    one worker, one optimizer step covering the epoch (micro-batches of one row, as many as the epoch has
    rows): (that step's loss, its label tokens). A subprocess, because a job ends by disconnecting its
    driver from Ray."""
    import ray

    rows = prepared["summary"]["shard_sets"]["stage1"]["rows"]
    layout = "packed" if packing else "unpacked"
    root, run_dir = prepared["root"], f"{prepared['root']}/runs/padding-free-{layout}-{backend}"
    overrides = [
        f"storage.root={root}", f"model.tokenizer={tokenizer}", f"model.attn_implementation={backend}",
        f"data.packing={str(packing).lower()}",
        "stage1.method=full", "stage1.precision=fp32", "stage1.num_workers=1", "stage1.micro_batch_size=1",
        f"stage1.gradient_accumulation_steps={rows}", "stage1.max_steps=1", "stage1.epochs=1",
        "stage1.shuffle=false",
    ]  # fmt: skip
    command = [sys.executable, "jobs/stage1.py", "--config", str(TEST_CONFIG), "--run-dir", run_dir]
    for override in overrides:
        command += ["--set", override]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["steps"] == 1  # the job's result line
    storage = Storage(config_for(root).storage)
    (step,) = [
        json.loads(line) for line in storage.read_text(f"{run_dir}/metrics.jsonl").splitlines() if line
    ]
    return step["loss"], step["label_tokens"]


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
def test_packing_does_not_change_the_first_step_loss(
    backend: str, prepared_shards: dict[str, Any], unpacked_shards: dict[str, Any]
) -> None:
    """Packed rows flattened per micro-batch and one sample per row give the same loss: the mean over
    every answer token of the epoch, with no sample attending to another (1e-5 relative, fp32)."""
    tokenizer = str(prepared_shards["config"].model.tokenizer)
    rows = {name: shards["summary"]["shard_sets"]["stage1"]["rows"] for name, shards in (
        ("packed", prepared_shards), ("unpacked", unpacked_shards))}  # fmt: skip
    assert rows["packed"] < rows["unpacked"]  # packing put several samples in a row
    packed, packed_tokens = first_step_loss(prepared_shards, tokenizer, backend, packing=True)
    unpacked, unpacked_tokens = first_step_loss(unpacked_shards, tokenizer, backend, packing=False)
    assert packed_tokens == unpacked_tokens > 0
    assert packed == pytest.approx(unpacked, rel=1e-5)


def compiled_graphs(batches: list[dict[str, torch.Tensor]]) -> tuple[int, int]:
    """(graphs compiled, recompiles) for forward+backward of `batches` through torch.compile of the tiny model."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.factory import build_tiny_qwen2
    from taiyi_ray.train.loop import micro_batch_loss

    shape = TinyQwen2Shape(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    model = build_tiny_qwen2(shape, 151_680, seed=0, eos_token_id=0, pad_token_id=0)  # the Qwen2 ids
    model.config.use_cache = False
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model)
    for batch in batches:
        micro_batch_loss(compiled, batch, 100.0).backward()
    return counters["stats"]["unique_graphs"], sum(counters["recompiles"].values())


def test_a_fixed_token_count_compiles_one_graph_for_two_epochs(prepared_shards: dict[str, Any]) -> None:
    """stage.torch_compile pads every flattened pass to max_tokens_per_micro_batch (default rows x
    max_seq_len): one graph and no recompile over two epochs of the demo shards as the training stream
    delivers them. Without the fixed count the token count changes from pass to pass and dynamo
    compiles again (the test can tell)."""
    from taiyi_ray.config.train import StageConfig
    from taiyi_ray.data.plan import DataPlan
    from taiyi_ray.data.stream import RankStream
    from taiyi_ray.train.loop import forward_token_count

    storage, manifest = stage1_manifest(prepared_shards)
    seq_len = manifest.settings.max_seq_len
    stage = StageConfig.model_validate(
        {"data": [{"set": "stage1"}], "micro_batch_size": 2, "torch_compile": True}
    )
    pad_to = forward_token_count(stage, seq_len)
    assert pad_to == 2 * seq_len
    plan = DataPlan([manifest.source_files()], seed=0, shuffle=True)
    stream = RankStream(plan, storage, 1, 0, 2, 1, 2, pad_id=0, pad_to=pad_to, pad_block=seq_len)
    batches = [batch for step in stream for batch in step.micro_batches]  # two whole epochs
    assert len(batches) == 2 * (manifest.rows // 2) > 2
    assert {batch["input_ids"].shape for batch in batches} == {(1, pad_to)}
    assert compiled_graphs(batches) == (1, 0)
    filesystem, path = storage.arrow(manifest.source_files().locations[0])
    table = pq.read_table(path, filesystem=filesystem, columns=STREAM_COLUMNS)
    natural = [flatten(table.slice(start, 2), 0) for start in (0, 2, 4)]
    assert len({batch["input_ids"].shape for batch in natural}) > 1
    graphs, recompiles = compiled_graphs(natural)
    assert graphs + recompiles > 1


def test_zero2_with_the_optimizer_on_cpu_adam_learns_and_resumes_exactly(
    prepared_shards: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """offload_optimizer: DeepSpeed's CPU Adam steps the offloaded states (DeepSpeed refuses the torch
    AdamW there). Its op is JIT-built once into TORCH_EXTENSIONS_DIR and loaded from there afterwards.
    The loss falls, and a run whose rank 1 dies at step 3 resumes from its checkpoint to the same loss."""
    from tests.integration.test_training import run_stage, shards_config

    config = shards_config(prepared_shards, "stage1.offload_optimizer=true", "stage1.max_steps=6")
    clean = run_stage(config, "stage1", f"{prepared_shards['root']}/runs/stage1-offload")
    assert clean["steps"] == 6 and clean["final_loss"] < clean["first_loss"]
    monkeypatch.setenv("TAIYI_FAULT_AT_STEP", "3")
    faulted = run_stage(config, "stage1", f"{prepared_shards['root']}/runs/stage1-offload-faulted")
    assert faulted["restarts"] == 1 and faulted["resumed_from_step"] == 2
    assert faulted["data_fingerprint"] == clean["data_fingerprint"]
    assert faulted["final_loss"] == pytest.approx(clean["final_loss"], abs=1e-6)
