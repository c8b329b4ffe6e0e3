"""The walking skeleton end to end on the real Qwen2 tokenizer: jobs/pipeline.py's chain (data -> stage 1
-> stage 2 -> export -> evaluate -> serve) with real Ray, DeepSpeed, Ray Data, Ray Serve and HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.encode_samples import IGNORE_INDEX
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer
from taiyi_ray.storage import Storage
from tests.integration.helpers import config_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(ray_cluster: None, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from taiyi_ray.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    config = config_for(
        str(root), f"model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}", "stage2.zero_stage=2"
    )
    summary = run_pipeline(config, str(root / "run"), serve_check=True).model_dump(mode="json")
    return {"root": root, "run": root / "run", "summary": summary, "config": config}


def expected_ids_and_labels(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[list[int], list[int]]:
    """Taiyi format built segment by segment: each turn's text, then <|endoftext|>; answers learned."""
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids: list[int] = []
    labels: list[int] = []
    for message in messages:
        segment = [*tokenizer(message["content"], add_special_tokens=False).input_ids, end]
        ids += segment
        labels += segment if message["role"] == "assistant" else [IGNORE_INDEX] * len(segment)
    return ids, labels


def test_shards_hold_every_sample_with_labels_exactly_on_the_answers(
    pipeline: dict[str, Any], shared_dir: Path
) -> None:
    data = json.loads((pipeline["run"] / "data" / "summary.json").read_text())
    stage1 = data["shard_sets"]["stage1"]
    version = Path(stage1["version_dir"])
    table = pa.concat_tables(pq.read_table(path) for path in sorted(version.glob("*.parquet")))
    assert (
        table.num_rows
        == stage1["rows"]
        == sum(entry["rows"] for entry in json.loads((version / "manifest.json").read_text())["files"])
    )
    samples = {}
    for path in sorted((pipeline["run"] / "data" / "samples" / "stage1").glob("*.jsonl")):
        samples.update({item["id"]: item for item in map(json.loads, path.read_text().splitlines())})
    assert (
        sum(len(ids) for ids in table.column("sample_ids").to_pylist()) == len(samples) == stage1["samples"]
    )
    tokenizer = configure_tokenizer(
        load_tokenizer(shared_dir / "tokenizers" / "qwen2"), get_chat_format("taiyi")
    )
    checked = 0
    for row in table.to_pylist():
        start = 0
        for sample_id, length in zip(row["sample_ids"], row["sample_tokens"], strict=True):
            ids, labels = expected_ids_and_labels(tokenizer, samples[sample_id]["messages"])
            assert row["input_ids"][start : start + length] == ids, sample_id
            assert row["labels"][start : start + length] == labels, sample_id  # token by token
            assert row["position_ids"][start : start + length] == list(range(length))
            start += length
            checked += 1
    assert checked == len(samples)


def test_training_learns_and_the_checkpoint_holds_the_final_adapter(pipeline: dict[str, Any]) -> None:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    stage1 = json.loads((pipeline["run"] / "stage1" / "summary.json").read_text())
    assert stage1["steps"] >= 6 and stage1["epoch_mean_losses"][-1] < stage1["epoch_mean_losses"][0]
    assert stage1["final_loss"] < stage1["first_loss"]
    stage2 = json.loads((pipeline["run"] / "stage2" / "summary.json").read_text())
    assert stage2["init_from"] == str(pipeline["run"] / "stage1")
    # the last checkpoint reloads (DeepSpeed's own reader) and holds exactly the exported stage-1 adapter
    last = pipeline["run"] / "stage1" / "train" / f"checkpoint-{stage1['steps']:06d}"
    restored = get_fp32_state_dict_from_zero_checkpoint(
        str(last), tag="deepspeed", exclude_frozen_parameters=True
    )
    adapter = load_file(str(pipeline["run"] / "stage1" / "model" / "adapter" / "adapter_model.safetensors"))
    assert len(adapter) > 0
    for name, tensor in adapter.items():
        match = [
            key
            for key in restored
            if key.endswith(name.replace(".weight", ".default.weight").removeprefix("base_model.model."))
        ]
        assert len(match) == 1, name
        torch.testing.assert_close(restored[match[0]], tensor.float())


def test_export_loads_with_transformers_and_generates(pipeline: dict[str, Any]) -> None:
    model_dir = Path(pipeline["summary"]["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = load_tokenizer(model_dir)
    assert tokenizer.eos_token == "<|endoftext|>" == get_chat_format("taiyi").end_token
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Find the chemicals: aspirin."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]


def test_evaluation_report_and_http_answer(pipeline: dict[str, Any]) -> None:
    results = json.loads((pipeline["run"] / "eval" / "results.json").read_text())
    assert results and all(
        {"metric", "score", "n", "unparsed", "missing"} <= set(entry) for entry in results.values()
    )
    assert (pipeline["run"] / "eval" / "report.md").exists()
    answer = json.loads(Storage().read_text(str(pipeline["run"] / "serve" / "answer.json")))
    assert answer["status"] == 200
    body = answer["response"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert (
        usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        and 0 < usage["completion_tokens"] <= 24
    )
