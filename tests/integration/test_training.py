"""Two-stage SFT for real: Ray Train (2 gloo CPU workers) + DeepSpeed ZeRO-2/3, LoRA and full
fine-tuning, shards and checkpoints on the S3 endpoint, fault injection, SIGTERM, worker-count change,
export that reloads and generates."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from taiyi_ray.config.jobs import ExportJobConfig, PipelineJobConfig, Stage1JobConfig, Stage2JobConfig
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.storage import Storage
from tests.conftest import s3_request_log
from tests.integration.helpers import REPO_ROOT, config_for

pytestmark = pytest.mark.integration


def stage_config(config: PipelineJobConfig, stage: str) -> Stage1JobConfig | Stage2JobConfig:
    model = Stage1JobConfig if stage == "stage1" else Stage2JobConfig
    return model(
        storage=config.storage,
        ray=config.ray,
        model=config.model,
        data=config.data,
        eval=config.eval,
        **{stage: getattr(config, stage)},
    )


def run_stage(config: PipelineJobConfig, stage: str, run_dir: str, resume: bool = False) -> dict[str, Any]:
    from taiyi_ray.pipeline import run_stage as run_stage_as_its_job

    summary = run_stage_as_its_job(stage_config(config, stage), stage, run_dir, resume=resume)
    return {"run_dir": run_dir, **summary.model_dump(mode="json")}  # the job's result line


def shards_config(prepared: dict[str, Any], *overrides: str) -> PipelineJobConfig:
    base: PipelineJobConfig = prepared["config"]
    return config_for(prepared["root"], f"model.tokenizer={base.model.tokenizer}", *overrides)


def read_jsonl(storage: Storage, location: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in storage.read_text(location).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clean_stage1(prepared_shards: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    cache = tmp_path_factory.mktemp("node-cache")
    config = shards_config(prepared_shards, f"storage.cache_dir={cache}")
    run_dir = f"{prepared_shards['root']}/runs/stage1-clean"
    with s3_request_log() as requests:
        summary = run_stage(config, "stage1", run_dir)
    base_weights = f"{run_dir.removeprefix('s3://')}/model/base_model/model.safetensors"
    return {"config": config, "run_dir": run_dir, "summary": summary, "cache": cache,
            "base_gets": requests.gets(base_weights)}  # fmt: skip


def test_the_workers_of_a_node_fetch_the_base_model_once(clean_stage1: dict[str, Any]) -> None:
    """Two training workers on one node: one GET of the base's weights in the S3 endpoint's request
    log (each worker fetched it before storage.cache_dir), one entry in the node cache."""
    assert clean_stage1["summary"]["steps"] > 0
    assert clean_stage1["base_gets"] == 1
    entries = [path for path in clean_stage1["cache"].iterdir() if path.is_dir()]
    assert len(entries) == 1 and (entries[0] / "model.safetensors").is_file()


VALIDATION = (
    "stage1.validation.catalogue=configs/catalogues/demo-eval.yaml",
    "stage1.validation.every_steps=3",
    "stage1.validation.items_per_set=3",
    "stage1.validation.max_new_tokens=4",
)


def test_validation_scores_dev_subsets_and_changes_nothing_in_training(
    clean_stage1: dict[str, Any], prepared_shards: dict[str, Any]
) -> None:
    """The same run with validation on: the same data and losses as without, plus validation lines."""
    config = shards_config(prepared_shards, *VALIDATION)
    run_dir = f"{prepared_shards['root']}/runs/stage1-validated"
    summary, clean = run_stage(config, "stage1", run_dir), clean_stage1["summary"]
    storage = Storage(config.storage)
    assert summary["data_fingerprint"] == clean["data_fingerprint"]
    assert summary["epoch_mean_losses"] == pytest.approx(clean["epoch_mean_losses"], rel=1e-6, abs=1e-7)
    assert summary["final_loss"] == pytest.approx(clean["final_loss"], rel=1e-6, abs=1e-7)
    lines = read_jsonl(storage, f"{run_dir}/metrics.jsonl")
    validations = [line for line in lines if "validation" in line]
    steps = summary["steps"]
    expected_steps = sorted({*range(3, steps + 1, 3), steps})
    assert [line["step"] for line in validations] == expected_steps
    names = [entry.name for entry in load_catalogue("configs/catalogues/demo-eval.yaml").datasets]
    for line in validations:
        assert set(line) == {"step", "validation"} and list(line["validation"]) == names
        for value in line["validation"].values():
            assert set(value) == {"score", "metric", "n"} and 0 <= value["score"] <= 100
    steps_only = [line for line in lines if "validation" not in line]
    assert [line["step"] for line in steps_only] == list(range(1, steps + 1))
    last = validations[-1]["validation"]
    for name in names:
        entry = summary["validation"][name]
        assert entry["last"] == {"step": steps, "score": last[name]["score"]}
        assert entry["best"]["score"] == max(line["validation"][name]["score"] for line in validations)
    assert summary["validation_s"] > 0 and 0 < summary["validation_share"] < 1
    assert storage.read_bytes(f"{run_dir}/validation.png")[:4] == b"\x89PNG"
    assert clean["validation"] is None and clean["validation_s"] == 0


def test_validation_under_zero3_gathers_the_weights(prepared_shards: dict[str, Any]) -> None:
    config = shards_config(prepared_shards, *VALIDATION, "stage1.zero_stage=3", "stage1.max_steps=3")
    run_dir = f"{prepared_shards['root']}/runs/stage1-validated-zero3"
    summary = run_stage(config, "stage1", run_dir)
    lines = read_jsonl(Storage(config.storage), f"{run_dir}/metrics.jsonl")
    assert [line["step"] for line in lines if "validation" in line] == [3]
    assert all(entry["last"]["step"] == 3 for entry in summary["validation"].values())


def test_stage1_lora_zero2_trains_and_checkpoints_to_s3(
    clean_stage1: dict[str, Any], prepared_shards: dict[str, Any]
) -> None:
    summary, run_dir = clean_stage1["summary"], clean_stage1["run_dir"]
    storage = Storage(clean_stage1["config"].storage)
    stage1_rows = prepared_shards["summary"]["shard_sets"]["stage1"]["rows"]
    assert (
        summary["steps_per_epoch"] == stage1_rows // 2
        and summary["steps"] == 2 * summary["steps_per_epoch"] >= 6
    )
    assert math.isfinite(summary["final_loss"]) and summary["final_loss"] < summary["first_loss"] - 0.05
    assert summary["epoch_mean_losses"][1] < summary["epoch_mean_losses"][0]
    assert summary["restarts"] == 0 and summary["resumed_from_step"] is None and summary["mfu"] is None
    # checkpoints landed in object storage; only the last K=2 are kept
    checkpoints = [
        item.rsplit("/", 1)[-1] for item in storage.list(f"{run_dir}/train") if "checkpoint-" in item
    ]
    assert checkpoints == [f"checkpoint-{summary['steps'] - 2:06d}", f"checkpoint-{summary['steps']:06d}"]
    # the consumed-sample log: every step once, 2 rows per step, each epoch a permutation of the set
    log = [entry for name in storage.list(f"{run_dir}/samples") for entry in read_jsonl(storage, name)]
    assert sorted(entry["step"] for entry in log) == list(range(1, summary["steps"] + 1))
    all_samples = prepared_shards["summary"]["shard_sets"]["stage1"]["samples"]
    for epoch in (0, 1):
        seen = Counter(i for entry in log if entry["epoch"] == epoch for i in entry["ids"])
        assert max(seen.values()) == 1  # no sample twice in an epoch
        # an odd row count leaves one packed row (a few samples) for the next epoch's shuffle
        assert all_samples - 6 <= len(seen) <= all_samples
    metrics = read_jsonl(storage, f"{run_dir}/metrics.jsonl")
    assert [item["step"] for item in metrics] == list(range(1, summary["steps"] + 1))  # no validation lines
    assert all(item["tokens_per_s"] > 0 and item["lr"] == pytest.approx(5e-3) for item in metrics)
    assert all(0 <= item["data_wait_s"] <= item["step_s"] for item in metrics)  # a share of the step
    assert storage.exists(f"{run_dir}/model/adapter/adapter_model.safetensors")
    assert storage.exists(f"{run_dir}/deepspeed_config.json")


def test_fault_injected_run_on_the_shared_training_files_resumes_exactly(
    shared_shards: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training files of ../shared/data, sharded to S3, streamed into 2 workers: rank 1 dies at
    step 3, Ray Train restarts the group, and the run consumes exactly what a clean run consumes."""
    data = shared_shards["summary"]
    assert data["decontaminated"] >= 500 and data["shard_sets"]["stage1"]["rows"] > 1000  # the real files
    config: PipelineJobConfig = shared_shards["config"]
    config = config.model_copy(update={"stage1": config.stage1.model_copy(update={"max_steps": 6})})
    clean = run_stage(config, "stage1", f"{shared_shards['root']}/runs/stage1-clean")
    monkeypatch.setenv("TAIYI_FAULT_AT_STEP", "3")
    run_dir = f"{shared_shards['root']}/runs/stage1-faulted"
    faulted = run_stage(config, "stage1", run_dir)
    assert faulted["restarts"] == 1
    assert faulted["resumed_from_step"] == 2  # checkpoints every 2 steps; rank 1 died after step 3
    assert faulted["data_fingerprint"] == clean["data_fingerprint"]
    assert faulted["steps"] == clean["steps"] == 6 and faulted["samples"] == clean["samples"]
    # fp32 on CPU, same data order and restored RNG: the same arithmetic, so the losses agree to
    # float64-printing noise. 1e-6 leaves room for gloo's reduction order only.
    assert faulted["final_loss"] == pytest.approx(clean["final_loss"], abs=1e-6)
    assert Storage(config.storage).exists(f"{run_dir}/fault-injected-step-3")


def test_torch_compile_trains_the_same_steps_as_eager(prepared_shards: dict[str, Any]) -> None:
    """stage.torch_compile: DeepSpeed's engine.compile() (inductor, here on CPU) under our loss, LoRA,
    ZeRO-2 on 2 workers and packing with position ids, micro-batches padded to the shards' row width.
    Padding adds tokens that attend only to themselves and carry no label, so every step's loss must
    equal the eager run's; 1e-4 relative leaves room for inductor's fused, reordered float32 arithmetic.
    LoRA dropout is 0 in both runs: compiled dropout draws its masks from inductor's own RNG stream."""
    overrides = ("stage1.max_steps=6", "stage1.lora.dropout=0")
    runs = {}
    for name, compile_flag in (("eager", "false"), ("compiled", "true")):
        config = shards_config(prepared_shards, *overrides, f"stage1.torch_compile={compile_flag}")
        run_dir = f"{prepared_shards['root']}/runs/stage1-{name}"
        runs[name] = (
            run_stage(config, "stage1", run_dir),
            read_jsonl(Storage(config.storage), f"{run_dir}/metrics.jsonl"),
        )
    (eager_summary, eager), (summary, compiled) = runs["eager"], runs["compiled"]
    assert summary["steps"] == eager_summary["steps"] == 6 and len(compiled) == len(eager) == 6
    assert [item["tokens"] for item in compiled] == [item["tokens"] for item in eager]  # real tokens only
    for ours, reference in zip(compiled, eager, strict=True):
        assert ours["loss"] == pytest.approx(reference["loss"], rel=1e-4), ours["step"]
    assert summary["final_loss"] < summary["first_loss"]


def _adapter_l2(storage: Storage, run_dir: str, tmp_path: Path) -> float:
    local = tmp_path / "adapter.safetensors"
    local.write_bytes(storage.read_bytes(f"{run_dir}/model/adapter/adapter_model.safetensors"))
    return math.sqrt(sum(float((tensor.float() ** 2).sum()) for tensor in load_file(str(local)).values()))


def test_qlora_loads_the_s3_base_once_in_4bit_nf4_and_trains(
    clean_stage1: dict[str, Any], prepared_shards: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """method: qlora with model.base an s3:// directory (the 7B configs' case): fetched once for the
    node's two workers, loaded straight in 4-bit NF4 (bitsandbytes' CPU backend here), LoRA trains."""
    base = f"{clean_stage1['run_dir']}/model/base_model"
    cache = tmp_path_factory.mktemp("qlora-cache")
    config = shards_config(
        prepared_shards, f"model.base={base}", "stage1.method=qlora", "stage1.max_steps=4",
        f"storage.cache_dir={cache}",
    )  # fmt: skip
    run_dir = f"{prepared_shards['root']}/runs/stage1-qlora"
    with s3_request_log() as requests:
        summary = run_stage(config, "stage1", run_dir)
    assert requests.gets(f"{base.removeprefix('s3://')}/model.safetensors") == 1
    assert summary["method"] == "qlora" and summary["steps"] == 4 and math.isfinite(summary["final_loss"])
    clean = clean_stage1["summary"]["first_loss"]  # same base, data and seed, full-precision base
    assert summary["first_loss"] != clean and abs(summary["first_loss"] - clean) < 0.05 * clean
    local = Storage(config.storage).download_dir(f"{run_dir}/model/adapter", tmp_path_factory.mktemp("qa"))
    adapter = load_file(f"{local}/adapter_model.safetensors")
    assert any(name.endswith("lora_B.weight") and tensor.abs().sum() > 0 for name, tensor in adapter.items())


def test_stage2_continues_stage1_under_zero3_and_exports(
    clean_stage1: dict[str, Any], prepared_shards: dict[str, Any], tmp_path: Path
) -> None:
    from taiyi_ray.data.chat_format import get_chat_format
    from taiyi_ray.data.encode_samples import tokenize_conversations
    from taiyi_ray.data.schema import Message
    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import SamplingParams
    from taiyi_ray.model.result import read_result
    from taiyi_ray.train.export_task import memory_budget_gib, run_export_job, weights_bytes

    config = shards_config(prepared_shards, f"stage2.init_from={clean_stage1['run_dir']}")
    run_dir = f"{prepared_shards['root']}/runs/stage2"
    summary = run_stage(config, "stage2", run_dir)
    storage = Storage(config.storage)
    # stage 2 starts from stage 1's trained adapter, not a fresh one
    assert summary["initial_trainable_l2"] == pytest.approx(
        _adapter_l2(storage, clean_stage1["run_dir"], tmp_path), rel=1e-5
    )
    losses = summary["epoch_mean_losses"]
    assert summary["zero_stage"] == 3 and len(losses) == 2 and losses[1] < losses[0], losses
    stage2_sets = set(prepared_shards["summary"]["shard_sets"]["stage2"]["datasets"])
    assert stage2_sets <= set(summary["realised_mix"]) and len(summary["realised_mix"]) > len(stage2_sets)

    export = config.export.model_copy(update={"from_run": run_dir})
    refused = export.model_copy(update={"memory_gib": 100_000.0})
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"export.memory_gib=100000: .*largest: [0-9.]+ GiB, node 127.0.0.1"):
        run_export_job(ExportJobConfig(storage=config.storage, model=config.model, export=refused), "unused")
    assert time.monotonic() - started < 10  # refused at once, never a task left pending
    exported = run_export_job(
        ExportJobConfig(storage=config.storage, model=config.model, export=export), f"{run_dir}-export"
    ).model_dump()
    base = read_result(storage, run_dir)[0].base_model  # a float32 base: LoRA merging holds it as stored
    assert exported["memory_gib"] == memory_budget_gib(weights_bytes(storage, base))  # the default budget
    local = storage.download_dir(exported["model_dir"], tmp_path / "export")
    loaded = load_for_inference(local)
    # the exported tokenizer ends an answer exactly as training did
    chat_format = get_chat_format("taiyi")
    conversation = [
        Message(role="user", content="Find chemicals: aspirin."),
        Message(role="assistant", content="Chemical: aspirin"),
    ]
    ((ids, labels),) = tokenize_conversations(loaded.tokenizer, chat_format, [conversation])
    templated = loaded.tokenizer.apply_chat_template([m.model_dump() for m in conversation], tokenize=True)
    templated = templated["input_ids"] if hasattr(templated, "keys") else templated
    assert list(templated) == ids.tolist()
    assert labels[-1] == loaded.tokenizer.eos_token_id == loaded.model.generation_config.eos_token_id
    prompt = loaded.tokenizer(chat_format.prompt_text(conversation[:1]), add_special_tokens=False)[
        "input_ids"
    ]
    batcher = ContinuousBatcher.for_model(loaded)
    generated = batcher.generate(loaded, [prompt] * 2, SamplingParams(max_new_tokens=6))
    assert all(0 < len(item.token_ids) <= 6 for item in generated)
    assert "taiyi-ray-test" in (Path(local) / "README.md").read_text()


def test_sigterm_checkpoints_then_resume_with_one_worker(prepared_shards: dict[str, Any]) -> None:
    """Full fine-tuning, ZeRO-2: SIGTERM to the driver -> checkpoint and a clean exit; --resume with one
    worker instead of two continues the same epoch with nothing lost and nothing repeated."""
    import ray

    overrides = [
        "stage1.method=full",
        "stage1.learning_rate=1e-3",
        "stage1.checkpoint_every_steps=100",
        "stage1.epochs=2",
    ]
    config = shards_config(prepared_shards, *overrides)
    run_dir = f"{prepared_shards['root']}/runs/stage1-sigterm"
    storage = Storage(config.storage)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "jobs/stage1.py",
        "--config",
        "configs/tests.yaml",
        "--run-dir",
        run_dir,
        f"--set=storage.root={prepared_shards['root']}",
        f"--set=model.tokenizer={config.model.tokenizer}",
        *[f"--set={item}" for item in overrides],
    ]
    driver = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        if storage.exists(f"{run_dir}/attempts/attempt-0001.json"):
            break
        time.sleep(0.5)
    time.sleep(4)  # a few steps in
    driver.send_signal(signal.SIGTERM)
    output, errors = driver.communicate(timeout=240)
    assert driver.returncode == 0, errors[-3000:]
    stopped = json.loads(output.strip().splitlines()[-1])
    assert stopped["stopped_early"] and 1 <= stopped["steps"] < stopped["total_steps"]
    assert storage.exists(f"{run_dir}/train/checkpoint-{stopped['steps']:06d}")  # saved on SIGTERM

    resumed_config = shards_config(prepared_shards, *overrides, "stage1.num_workers=1")
    summary = run_stage(resumed_config, "stage1", run_dir, resume=True)
    assert summary["resumed_from_step"] == stopped["steps"] and not summary["stopped_early"]
    assert summary["epoch_mean_losses"][-1] < summary["epoch_mean_losses"][0]
    log = [entry for name in storage.list(f"{run_dir}/samples") for entry in read_jsonl(storage, name)]
    assert sorted(entry["step"] for entry in log) == list(range(1, summary["steps"] + 1))
    samples_per_epoch = prepared_shards["summary"]["shard_sets"]["stage1"]["samples"]
    for epoch in (0, 1):
        seen = Counter(i for entry in log if entry["epoch"] == epoch for i in entry["ids"])
        assert max(seen.values()) == 1, f"epoch {epoch}: a sample was repeated"
        # one worker takes every row left (a step is one row): nothing is lost in either epoch
        assert len(seen) == samples_per_epoch, f"epoch {epoch}: samples were lost"


def test_resume_stays_on_the_shard_versions_its_checkpoint_trained_on(
    ray_cluster: None, shared_dir: Path, s3_endpoint: str
) -> None:
    """prepare_data re-run between a stop and --resume writes a newer shard version: the resumed run
    still trains on the version its checkpoint recorded; with that version gone, --resume is an error
    naming the version and the run dir (never a silent switch to other data)."""
    from taiyi_ray.config.jobs import DataJobConfig
    from taiyi_ray.data.job import run_data_job
    from taiyi_ray.data.shards import ShardError, resolve_version
    from tests.integration.helpers import s3_root

    root = s3_root("pinned")
    tokenizer = f"model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}"
    config = config_for(root, tokenizer, "stage1.max_steps=2", "stage1.checkpoint_every_steps=2")
    storage = Storage(config.storage)

    def prepare(data: Any, name: str) -> None:
        run_data_job(
            DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=data), name
        )

    prepare(config.data, f"{root}/runs/data")
    run_dir = f"{root}/runs/stage1"
    pinned = run_stage(config, "stage1", run_dir)["shard_versions"]
    prepare(config.data.model_copy(update={"rows_per_shard": 5}), f"{root}/runs/data-again")
    newest = resolve_version(storage, f"{root}/shards/{config.data.name}/stage1")
    assert newest != pinned[0]["location"]  # a newer version exists now

    longer = config_for(root, tokenizer, "stage1.max_steps=4", "stage1.checkpoint_every_steps=2")
    resumed = run_stage(longer, "stage1", run_dir, resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["steps"] == 4
    assert resumed["shard_versions"] == pinned

    storage.remove(pinned[0]["location"])
    again = config_for(root, tokenizer, "stage1.max_steps=6", "stage1.checkpoint_every_steps=2")
    gone = (
        rf"{re.escape(run_dir)}: cannot resume: .*{re.escape(pinned[0]['location'])}, which no longer exists"
    )
    with pytest.raises(ShardError, match=gone):
        run_stage(again, "stage1", run_dir, resume=True)
