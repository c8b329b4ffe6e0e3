"""transformers' continuous batching vs our ContinuousBatcher on CPU: speed and batch invariance. JSON lines.

    python benchmarks/hf_continuous_batching.py   # tiny + small random Qwen2, 32 prompts: ~2 min of one core

Why: transformers >= 5 ships continuous batching (`ContinuousBatchingManager`, `generate_batch`); we decode
through our own engine (taiyi_ray/model/engine.py). This measures both on the same CPU (one thread, as a
replica with num_cpus_per_replica = 1), the same random-weight exports and the same chat prompts of varied
length, greedy with `--max-new-tokens` tokens each. Each engine is kept alive across runs (a server's manager
is persistent) and both return the chosen token's log-probability (HF: `return_logprobs`, ours: logprobs=0),
so both pay the same per-row softmax. HF's manager uses the model's "sdpa" attention (flash does not run on
CPU), no CUDA graphs or compile (CPU), and the defaults otherwise (prefix block sharing on, FIFO scheduler),
with the cache sized explicitly (`num_blocks`) instead of 60% of the machine's RAM.

Lines, per shape and engine:
  {"engine": "transformers_cb"|"taiyi", "shape", "prompts", "max_new_tokens", "wall_s", "tokens_per_s",
   "alone_vs_batched_mismatches", "first_logprob_mismatches", "logprob_mismatches", "max_logprob_abs_diff",
   "equal_to_generate", "distinct_token_ids", ...}
  wall_s: median of `--repeats` runs of all prompts together; *_mismatches: prompts whose greedy tokens
  (first-step / all log-probabilities, compared bitwise) differ between decoding the prompt alone and among
  all the others; equal_to_generate: prompts whose batched tokens equal `model.generate` on the prompt alone.
  distinct_token_ids: a random model repeats a few tokens, so equal tokens are weak evidence on their own;
  the bitwise log-probabilities are the sharp test of batch invariance.
  {"metric": "taiyi_vs_transformers_cb", "shape", "throughput_ratio", "equal_tokens"}: tokens/s of ours over
  HF's (same run), and prompts whose batched tokens are identical in both engines.
An engine that fails is a finding: its line carries "error" (the exception) instead of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from taiyi_ray.runtime import prepare_process_env

# Random Qwen2 shapes: "tiny" is the tests' export (tests/conftest.py build_tiny_export), "small" a larger one.
SHAPES = {
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2},
    "small": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 8,
              "num_key_value_heads": 2},
}  # fmt: skip
SENTENCES = [
    "Famotidine-associated delirium: a series of six cases in elderly patients.",
    "Lidocaine-induced cardiac asystole after intravenous administration for ventricular arrhythmia.",
    "患者男性，65岁，因反复胸闷气促三年，加重一周入院，既往有高血压病史十年。",
    "Suxamethonium infusion rate and observed fasciculations: a dose-response study.",
    "阿司匹林联合氯吡格雷用于急性冠脉综合征的疗效与出血风险分析。",
    "Naloxone reverses the antihypertensive effect of clonidine in spontaneously hypertensive rats.",
    "Extract the chemicals and diseases mentioned in the abstract and list them as JSON.",
    "二甲双胍是2型糖尿病的一线治疗药物，常见不良反应为胃肠道反应。",
]
HF = "transformers_cb"
PAGE_SIZE = 64  # HF cache page (tokens); small pages waste little on short prompts


@dataclass(frozen=True)
class Decoded:
    """One prompt's greedy output: tokens (end token stripped) and each chosen token's log-probability."""

    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "tokenizers" / "qwen2"))
    parser.add_argument("--shapes", default="tiny,small", help=f"comma-separated, of {sorted(SHAPES)}")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-batch-tokens", type=int, default=2048, help="both engines' tokens per step")
    parser.add_argument("--repeats", type=int, default=3, help="timed batched runs per engine (median)")
    return parser.parse_args()


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def chat_prompts(loaded, count: int) -> list[list[int]]:
    """`count` chat prompts of varied length (about 20 to 300 tokens), rendered with the export's format."""
    from taiyi_ray.data.schema import Message

    prompts = []
    for index in range(count):
        sentences = [SENTENCES[(index + step) % len(SENTENCES)] for step in range(1 + (index * 5) % 13)]
        text = loaded.chat_format.prompt_text([Message(role="user", content=" ".join(sentences))])
        prompts.append(loaded.tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def taiyi_decoder(loaded, max_new_tokens: int, max_batch_tokens: int) -> Callable:
    """Our engine, persistent; returns decode(prompts) -> [Decoded]."""
    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.generation import SamplingParams

    batcher = ContinuousBatcher.for_model(loaded, max_sequences=32, max_step_tokens=max_batch_tokens)
    params = SamplingParams(max_new_tokens=max_new_tokens, logprobs=0)

    def decode(prompts: Sequence[Sequence[int]]) -> list[Decoded]:
        completions = batcher.generate(loaded, prompts, params)
        return [
            Decoded(tuple(c.token_ids), tuple(lp.logprob for lp in c.logprobs or [])) for c in completions
        ]

    return decode


def hf_manager(loaded, end_id: int, max_new_tokens: int, max_batch_tokens: int, prompts: list[list[int]]):
    """A started transformers ContinuousBatchingManager over the same model, cache sized for `prompts`."""
    import torch
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    longest = max(len(ids) for ids in prompts) + max_new_tokens
    pages_per_request = -(-longest // PAGE_SIZE) + 1
    config = ContinuousBatchingConfig(
        page_size=PAGE_SIZE, num_blocks=len(prompts) * pages_per_request + 8, max_batch_tokens=max_batch_tokens,
        max_requests_per_batch=32, return_logprobs=True, auto_switch_to_flash=False,
    )  # fmt: skip
    generation = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=end_id, pad_token_id=end_id
    )
    manager = loaded.model.init_continuous_batching(
        generation_config=generation, continuous_batching_config=config
    )
    with torch.inference_mode():  # the manager's thread runs in the caller's inference mode
        manager.start()
    return manager


class TheirFailure(RuntimeError):
    """transformers' continuous batching failed: a finding to report, not a crash of the benchmark."""


@contextmanager
def hf_engine(loaded, end_id: int, prompts: list[list[int]], args: argparse.Namespace) -> Iterator[Callable]:
    """decode(prompts) -> [Decoded] through one started manager (requests added together, results in
    prompt order); any failure, even while starting, surfaces as `TheirFailure` from decode."""
    manager, startup_error = None, None
    try:
        manager = hf_manager(loaded, end_id, args.max_new_tokens, args.max_batch_tokens, prompts)
    except Exception as error:  # noqa: BLE001 - reported by decode, as a line
        startup_error = error

    def decode(batch: Sequence[Sequence[int]]) -> list[Decoded]:
        if manager is None:
            raise TheirFailure(f"starting: {type(startup_error).__name__}: {startup_error}")
        try:
            return _collect(manager, batch, end_id, args.max_new_tokens)
        except Exception as error:  # any failure of theirs on CPU is a finding to report
            raise TheirFailure(f"{type(error).__name__}: {error}") from error

    try:
        yield decode
    finally:
        if manager is not None:
            manager.stop(block=True, timeout=30)
            manager.destroy()


def _collect(manager, prompts: Sequence[Sequence[int]], end_id: int, max_new_tokens: int) -> list[Decoded]:
    request_ids = manager.add_requests(inputs=[list(p) for p in prompts], max_new_tokens=max_new_tokens)
    results: dict[str, Any] = {}
    while len(results) < len(request_ids):
        result = manager.get_result(timeout=60)
        if result is None:
            raise RuntimeError(f"the manager stopped answering (thread alive: {manager.is_running()})")
        if result.error is not None:
            raise RuntimeError(f"request {result.request_id} failed: {result.error}")
        if result.is_finished():
            results[result.request_id] = result
    return [_without_end(results[rid].generated_tokens, results[rid].logprobs, end_id) for rid in request_ids]


def _without_end(tokens: Sequence[int], logprobs: Sequence[float], end_id: int) -> Decoded:
    """HF keeps the end token in its output, ours does not (its log-probability is in both)."""
    kept = list(tokens[:-1]) if tokens and tokens[-1] == end_id else list(tokens)
    return Decoded(tuple(kept), tuple(logprobs))


def hf_generate_alone(loaded, prompts: list[list[int]], end_id: int, max_new_tokens: int) -> list[Decoded]:
    """`model.generate` on each prompt alone (batch of one, no padding): the reference."""
    import torch

    outputs = []
    for ids in prompts:
        with torch.inference_mode():
            sequence = loaded.model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=end_id, pad_token_id=end_id,
            )[0, len(ids):].tolist()  # fmt: skip
        outputs.append(_without_end(sequence, (), end_id))
    return outputs


def timed(decoders: dict[str, Callable], prompts: list[list[int]], repeats: int) -> dict[str, Any]:
    """Per engine: (median wall time of decoding all `prompts` together, outputs of the last run). The engines
    take turns within each repeat, so that both see the same load on the shared machine."""
    seconds: dict[str, list[float]] = {name: [] for name in decoders}
    outputs: dict[str, list[Decoded]] = {}
    for decode in decoders.values():
        decode(prompts[:4])  # warm-up
    for _ in range(repeats):
        for name, decode in decoders.items():
            started = time.perf_counter()
            outputs[name] = decode(prompts)
            seconds[name].append(time.perf_counter() - started)
    return {name: (statistics.median(seconds[name]), outputs[name]) for name in decoders}


def invariance(decode: Callable, prompts: list[list[int]], batched: list[Decoded]) -> dict[str, Any]:
    """Prompts whose tokens / first / all log-probabilities differ alone vs batched (bitwise)."""
    alone = [decode([ids])[0] for ids in prompts]
    pairs = list(zip(alone, batched, strict=True))
    return {
        "alone_vs_batched_mismatches": sum(a.token_ids != b.token_ids for a, b in pairs),
        "first_logprob_mismatches": sum(a.logprobs[:1] != b.logprobs[:1] for a, b in pairs),
        "logprob_mismatches": sum(a.logprobs != b.logprobs for a, b in pairs),
        "max_logprob_abs_diff": max(
            (abs(x - y) for a, b in pairs for x, y in zip(a.logprobs, b.logprobs, strict=False)), default=0.0
        ),
    }


def engine_line(
    name: str, decode: Callable, prompts: list[list[int]], timing: tuple[float, list[Decoded]], reference
) -> dict[str, Any]:
    """One engine's line: throughput of all prompts together, batch invariance, equality with generate."""
    wall_s, batched = timing
    tokens = sum(len(d.token_ids) for d in batched)
    return {
        "engine": name, "wall_s": round(wall_s, 3), "tokens_per_s": round(tokens / wall_s, 1),
        "generated_tokens": tokens, **invariance(decode, prompts, batched),
        "equal_to_generate": sum(d.token_ids == r.token_ids for d, r in zip(batched, reference, strict=True)),
        "distinct_token_ids": len({t for d in batched for t in d.token_ids}),
    }  # fmt: skip


def compare(decoders: dict[str, Callable], prompts, reference, args) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every engine's line and batched outputs; if transformers' engine fails, its line is {"error": ...} and
    ours is measured alone."""
    try:
        timings = timed(decoders, prompts, args.repeats)
        lines = {
            name: engine_line(name, decode, prompts, timings[name], reference)
            for name, decode in decoders.items()
        }
        return lines, {name: timing[1] for name, timing in timings.items()}
    except TheirFailure as failure:
        lines, outputs = compare({"taiyi": decoders["taiyi"]}, prompts, reference, args)
        return {HF: {"engine": HF, "error": str(failure)}, **lines}, outputs


def bench_shape(shape: str, args: argparse.Namespace, scratch: Path) -> None:
    import torch

    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import end_token_id
    from taiyi_ray.model.result import write_random_export

    model_dir = write_random_export(scratch / shape, args.tokenizer, TinyQwen2Shape(**SHAPES[shape]))
    loaded = load_for_inference(model_dir, "cpu", torch.float32)
    end_id = end_token_id(loaded)
    prompts = chat_prompts(loaded, args.prompts)
    common = {"shape": shape, **SHAPES[shape], "prompts": len(prompts), "max_new_tokens": args.max_new_tokens,
              "prompt_tokens": sum(map(len, prompts)), "threads": torch.get_num_threads(),
              "load_average_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
    reference = hf_generate_alone(loaded, prompts, end_id, args.max_new_tokens)
    with hf_engine(loaded, end_id, prompts, args) as hf_decode:
        decoders = {HF: hf_decode, "taiyi": taiyi_decoder(loaded, args.max_new_tokens, args.max_batch_tokens)}
        lines, outputs = compare(decoders, prompts, reference, args)
    for line in lines.values():
        emit({**line, **common})
    hf, ours = lines[HF], lines["taiyi"]
    if "error" not in hf:
        pairs = zip(outputs[HF], outputs["taiyi"], strict=True)
        emit({"metric": "taiyi_vs_transformers_cb", "shape": shape,
              "throughput_ratio": round(ours["tokens_per_s"] / hf["tokens_per_s"], 2),
              "equal_tokens": sum(a.token_ids == b.token_ids for a, b in pairs)})  # fmt: skip


def main() -> None:
    args = parse_args()
    prepare_process_env()
    import torch

    torch.set_num_threads(1)  # as a replica with num_cpus_per_replica = 1
    with tempfile.TemporaryDirectory(prefix="taiyi-bench-hfcb-") as scratch:
        for shape in args.shapes.split(","):
            bench_shape(shape, args, Path(scratch))


if __name__ == "__main__":
    main()
