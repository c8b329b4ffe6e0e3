"""lm-evaluation-harness as a real client of the endpoint: `lm_eval.simple_evaluate` over HTTP on 127.0.0.1
with two local tasks built at test time from ../shared/data files.

- `taiyi_pubmedqa_mc` (loglikelihood, `local-completions`): PubMedQA test questions in the export's chat
  format, choices `yes|no|maybe` + the end token, so every scored continuation ends with the end token and
  the endpoint's echo logprobs must carry its entry. Each logged loglikelihood is recomputed with plain
  transformers on the same export (lm-eval's tokenisation: whole text minus the context's tokens).
- `taiyi_medqa_generate` (`generate_until`, `local-chat-completions`): MedQA-USMLE questions answered with
  the answer text, the endpoint rendering the chat format itself.

The tiny Qwen2 is trained here to give the gold answer of every doc, so the task scores are pinned (1.0).
Nothing reaches the internet: the tasks read local JSONL files and the tokenizer is the export's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.data.chat_format import ChatFormat
from taiyi_ray.data.schema import Message
from tests.conftest import build_tiny_export, free_port
from tests.integration.helpers import memorise

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

MODEL_ID = "tiny-lmeval"
MC_TASK, GEN_TASK = "taiyi_pubmedqa_mc", "taiyi_medqa_generate"
MC_DOCS, GEN_DOCS = 6, 4  # lm-eval's --limit of each task
DECISIONS = ("yes", "no", "maybe")
BATCHING_NOTICE = "Batch size > 1 detected"  # lm-eval's warning when batch_size > 1, which is asked for here


@dataclass
class LocalTask:
    """A task's docs (what lm-eval reads from its JSONL file) and the (prompt, answer) texts to learn."""

    name: str
    docs: list[dict[str, Any]]
    lessons: list[tuple[str, str]]


def pubmedqa_task(shared_dir: Path, chat_format: ChatFormat) -> LocalTask:
    """PubMedQA test questions as multiple choice, the first two of each decision in file order (the file
    opens with a run of `yes`); each choice ends with the end token."""
    questions = json.loads((shared_dir / "data" / "PubMedQA" / "test_set.json").read_text())
    picked: list[tuple[str, dict[str, Any]]] = []
    for decision in DECISIONS:
        matching = [pair for pair in questions.items() if pair[1]["final_decision"] == decision]
        picked += matching[: MC_DOCS // len(DECISIONS)]
    docs, lessons = [], []
    for pmid, item in picked:
        prompt = chat_format.prompt_text([Message(role="user", content=item["QUESTION"])])
        choices = [decision + chat_format.end_token for decision in DECISIONS]
        label = DECISIONS.index(item["final_decision"])
        docs.append({"pmid": pmid, "prompt": prompt, "choices": choices, "label": label})
        lessons.append((prompt, choices[label]))
    return LocalTask(MC_TASK, docs, lessons)


def medqa_task(shared_dir: Path, chat_format: ChatFormat) -> LocalTask:
    """The shortest MedQA-USMLE test questions, to be answered with the answer text (no options: short
    prompts keep the training here short)."""
    lines = (shared_dir / "data" / "MedQA-USMLE" / "test.jsonl").read_text().splitlines()
    items = sorted((json.loads(line) for line in lines), key=lambda item: len(item["question"]))[:GEN_DOCS]
    docs, lessons = [], []
    for item in items:
        question = f"{item['question']}\nAnswer:"
        docs.append({"question": question, "answer": item["answer"]})
        prompt = chat_format.prompt_text([Message(role="user", content=question)])
        lessons.append((prompt, item["answer"] + chat_format.end_token))
    return LocalTask(GEN_TASK, docs, lessons)


def write_task_files(directory: Path, mc: LocalTask, generate: LocalTask) -> Path:
    """One JSONL file and one YAML config per task in `directory` (TaskManager's include_path)."""
    common = {"dataset_path": "json", "test_split": "test"}
    configs: dict[str, dict[str, Any]] = {
        mc.name: {
            "output_type": "multiple_choice",
            "doc_to_text": "prompt",  # a field name: the text is used as is (no Jinja rendering)
            "doc_to_choice": "choices",
            "doc_to_target": "label",
            "target_delimiter": "",  # the prompt already ends where the answer starts
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        },
        generate.name: {
            "output_type": "generate_until",
            "doc_to_text": "question",
            "doc_to_target": "answer",
            "generation_kwargs": {"until": ["\n"], "max_gen_toks": 40, "do_sample": False, "temperature": 0},
            "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
        },
    }
    for task in (mc, generate):
        data = directory / f"{task.name}.jsonl"
        data.write_text("".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in task.docs))
        kwargs = {"data_files": {"test": str(data)}, "cache_dir": str(directory / "datasets-cache")}
        config = {"task": task.name, **common, "dataset_kwargs": kwargs, **configs[task.name]}
        (directory / f"{task.name}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    return directory


@dataclass
class Setup:
    export: Path
    include_path: Path
    mc: LocalTask
    generate: LocalTask
    end_token_id: int


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path, qwen2_tokenizer_dir: Path) -> Setup:
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import end_token_id

    export = build_tiny_export(tmp_path_factory.mktemp("lm-eval") / "export", qwen2_tokenizer_dir, seed=1)
    loaded = load_for_inference(export)
    mc = pubmedqa_task(shared_dir, loaded.chat_format)
    generate = medqa_task(shared_dir, loaded.chat_format)
    encode = lambda text: loaded.tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    lessons = [(encode(prompt), encode(answer)) for prompt, answer in mc.lessons + generate.lessons]
    started = time.monotonic()
    memorise(export, lessons)  # asserts that the answers were learned
    log.info("taught %d answers in %.1f s", len(lessons), time.monotonic() - started)
    include_path = write_task_files(tmp_path_factory.mktemp("lm-eval-tasks"), mc, generate)
    return Setup(export, include_path, mc, generate, end_token_id(loaded))


@pytest.fixture(scope="module")
def endpoint(ray_cluster: None, setup: Setup) -> Iterator[str]:
    """The export served alone (no API key) on 127.0.0.1; yields the base URL."""
    from ray import serve

    from taiyi_ray.serve.app import build_application

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServeConfig(
        model=str(setup.export), model_id=MODEL_ID, num_cpus_per_replica=0.5, max_batch_size=8
    )
    serve.run(build_application(config), name="lm-eval", route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


def evaluate(
    model: str,
    model_args: dict[str, Any],
    task: LocalTask,
    setup: Setup,
    caplog: pytest.LogCaptureFixture,
    **options: Any,
) -> Any:
    """lm-eval's own entry point on one local task (all its docs: `limit` = their count), with per-sample
    logs; it must run clean: no lm-eval warning or error beyond the batching notice asked for."""
    import datasets
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    assert datasets.config.HF_HUB_OFFLINE, "HF_HUB_OFFLINE=1 must be set before datasets is imported"
    manager = TaskManager(include_path=str(setup.include_path), include_defaults=False)
    limit = len(task.docs)
    with caplog.at_level(logging.WARNING, logger="lm_eval"):
        results = simple_evaluate(
            model=model,
            model_args=model_args,
            tasks=[task.name],
            task_manager=manager,
            limit=limit,
            log_samples=True,
            bootstrap_iters=0,
            **options,
        )
    complaints = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("lm_eval") and record.levelno >= logging.WARNING
    ]
    assert [text for text in complaints if not text.startswith(BATCHING_NOTICE)] == []
    assert results is not None, "simple_evaluate returned nothing (it does so on non-zero ranks only)"
    assert task.name in results["results"], f"no results for {task.name}: {sorted(results['results'])}"
    samples = results["samples"][task.name]
    assert sorted(sample["doc_id"] for sample in samples) == list(range(limit))
    return results


def client_args(base_url: str, **extra: Any) -> dict[str, Any]:
    """lm-eval's model_args for the endpoint: two requests in flight, and one attempt each, so that an
    endpoint error fails the test instead of being retried away."""
    return {"model": MODEL_ID, "base_url": base_url, "num_concurrent": 2, "max_retries": 1, **extra}


def transformers_loglikelihood(
    model: Any, tokenizer: Any, context: str, continuation: str
) -> tuple[float, int]:
    """Sum of log-softmax of the continuation's tokens given the context, and the last token's id.

    Tokenised as lm-eval does and the endpoint does for text: the whole text with add_special_tokens=False,
    the continuation being the tokens after the context's own."""
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    assert whole[: len(context_ids)] == context_ids, "the context's tokens change when the answer follows"
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([whole])).logits[0].float()
    log_probs = torch.log_softmax(logits[:-1], dim=-1)
    positions = range(len(context_ids), len(whole))
    return float(sum(log_probs[position - 1, whole[position]] for position in positions)), whole[-1]


def test_loglikelihood_task_matches_transformers(
    endpoint: str, setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_args = client_args(
        f"{endpoint}/v1/completions", tokenizer=str(setup.export), tokenizer_backend="huggingface"
    )
    results = evaluate("local-completions", model_args, setup.mc, setup, caplog, batch_size=2)
    assert results["results"][MC_TASK]["acc,none"] == 1.0  # the tiny model was taught every gold choice
    model = AutoModelForCausalLM.from_pretrained(setup.export, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(setup.export)
    differences = []
    for sample in results["samples"][MC_TASK]:
        assert len(sample["arguments"]) == len(DECISIONS)
        # is_greedy (read from the echo's top logprobs): the taught choice only (the others start elsewhere)
        greedy = [is_greedy for _, is_greedy in sample["filtered_resps"]]
        assert greedy == [index == sample["doc"]["label"] for index in range(len(DECISIONS))]
        for (context, continuation), (scored, _) in zip(
            sample["arguments"], sample["filtered_resps"], strict=True
        ):
            expected, last_token = transformers_loglikelihood(model, tokenizer, context, continuation)
            assert last_token == setup.end_token_id, f"{continuation!r} does not end with the end token"
            assert scored == pytest.approx(expected, abs=1e-4), (sample["doc"]["pmid"], continuation)
            differences.append(abs(scored - expected))
    assert len(differences) == MC_DOCS * len(DECISIONS)
    log.info(
        "%d loglikelihoods: lm-eval vs transformers differ by <= %.2e", len(differences), max(differences)
    )


def test_generate_until_task_over_chat_completions(
    endpoint: str, setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    model_args = client_args(f"{endpoint}/v1/chat/completions")  # the endpoint applies the chat format
    results = evaluate(
        "local-chat-completions", model_args, setup.generate, setup, caplog, apply_chat_template=True
    )
    answers = [sample["filtered_resps"][0] for sample in results["samples"][GEN_TASK]]
    assert answers == [sample["target"] for sample in results["samples"][GEN_TASK]]
    assert results["results"][GEN_TASK]["exact_match,none"] == 1.0
