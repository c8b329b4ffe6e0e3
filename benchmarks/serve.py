"""Serving benchmark: continuous batching vs baselines, and what Serve adds per request. JSON lines.

    python benchmarks/serve.py                    # fixed workload, tiny random Qwen2 on CPU (tests' model)
    python benchmarks/serve.py --workload mixed   # continuous vs static scheduling on mixed lengths
    python benchmarks/serve.py --shape qwen2.5-0.5b --device cuda  # a Qwen2.5-0.5B-shaped model on a GPU

Every run uses one Serve instance on 127.0.0.1 (a local Ray started here) and compares two engine settings
(one replica, `num_cpus_per_replica` 1) closed-loop at concurrency 1, 8 and 32 (`--concurrency`): each
client sends its next greedy chat request when the previous one is answered, max(48, 40 x concurrency)
requests per level (rounded up to a multiple of the number of sizes). Why 40 per client: the clients start
together, so continuous batching runs in lockstep until the lengths spread out, and the last requests drain
a shrinking batch. Those ends weigh on a short level: in-process at concurrency 32 (mixed workload), static
needs 1.85x continuous's decoding steps with 6 requests per client, 2.06x with 12, 2.17x with 24 and 2.27x
with 40 (the steady state is 64/28 = 2.29x). Level by level, each setting is
deployed in turn and warmed up, so that both settings of a level see the same load on the machine; at
concurrency 1, where both do the same work one sequence at a time, they are deployed side by side and
take the requests in turn (a drift in the machine's speed moved their ratio by up to 20% in sequence). A
random model never emits its end token, so every request decodes exactly its `max_tokens`. Every line
also says how many decoding steps the replica ran ("engine_steps", from /healthz), the mean running batch
("rows_per_step") and the wall time per step ("ms_per_step").

`--workload mixed`: `serve.scheduling: continuous` vs `static` (a batch runs until its longest row ends: the
baseline), both `max_batch_size` = `--batch-size`; request i asks for max_tokens 4, 16, 64 in turn
(`--mixed-tokens`), so each size is exactly a third. Lines:
  {"mode": "continuous"|"static", "workload": "mixed", "concurrency", "throughput_rps", "p50_ms", "p99_ms",
   "p99_4_tokens_ms", "requests", "elapsed_s", "tokens_per_s", "max_batch_size", device...}
  {"metric": "continuous_gain", "concurrency": 32, "throughput_ratio", "p99_ratio", "throughput_ratio_c1"}
  throughput_ratio = continuous / static requests per second at the top concurrency (c1: at the lowest);
  p99_ratio = static / continuous p99 of the shortest requests: both > 1 when continuous is better.
Default `--workload fixed`: every request `--max-tokens`; continuous batching with `max_batch_size` =
`--batch-size` ("batched") vs = 1 ("unbatched"). Lines: {"mode", "workload": "fixed", "concurrency",
"throughput_rps", "p50_ms", "p99_ms", ...} per setting and level, then {"metric": "batching_gain",
"concurrency": 32, "throughput_ratio", "p99_batched_ms", "p99_unbatched_ms"}.
Both workloads also print {"metric": "serve_overhead_ms", ...}: p50 of one request through HTTP + Serve
(the unbatched, resp. static, deployment, one request at a time) minus p50 of the same tokenise + decode
with `ContinuousBatcher` in this process with the same thread count, interleaved (same load for both).
With `--device cuda`: {"metric": "decode_step_ms", "batch_size": 1, "value", ...}: the median time of one
decoding step of one running sequence, in-process, with `torch.cuda.synchronize` (the goal: <= 10 ms):
twice, "cudnn_attention": true (SDPA's cuDNN backend on, as before) then false (as the engine decodes).

`--engine-only` skips Ray and HTTP (for machines without Ray): `ContinuousBatcher` in this process alone.
Fixed: {"mode": "in_process", "batch_size", "tokens_per_s", "batch_latency_ms"} at batch sizes 1, 8, 32 and
{"metric": "in_process_batching_gain"}; mixed: the closed loop above without HTTP, lines with
"in_process": true and {"metric": "in_process_continuous_gain"}; then the decode_step_ms line (any device).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._serve_load import (
    PROMPT,
    LevelTimings,
    chat_body,
    engine_closed_loop,
    http_closed_loop,
    http_paired_loop,
    summarise,
)
from taiyi_ray.runtime import prepare_process_env

# Qwen2.5-0.5B (config.json of Qwen/Qwen2.5-0.5B); the vocabulary comes from the tokenizer.
QWEN25_05B = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "max_position_embeddings": 32768, "tie_word_embeddings": True, "rope_theta": 1e6,
}  # fmt: skip
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
Scheduling = Literal["continuous", "static"]
SCHEDULINGS: tuple[Scheduling, ...] = ("continuous", "static")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported model directory (default: build a random one)")
    parser.add_argument("--shape", choices=["tiny", "qwen2.5-0.5b"], default="tiny")
    parser.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "tokenizers" / "qwen2"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--workload", choices=["fixed", "mixed"], default="fixed")
    parser.add_argument("--batch-size", type=int, default=32, help="max_batch_size of the batched engines")
    parser.add_argument(
        "--max-tokens", type=int, default=16, help="fixed workload: every request's max_tokens"
    )
    parser.add_argument("--mixed-tokens", default="4,16,64", help="mixed workload: max_tokens in turn")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument(
        "--requests-per-client", type=int, default=40, help="requests = max(48, this x concurrency)"
    )
    parser.add_argument("--engine-only", action="store_true", help="the decoder in-process only, no Ray/HTTP")
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="serve.cuda_graphs in every setting (CUDA only)"
    )
    parser.add_argument(
        "--batched-only",
        action="store_true",
        help="no unbatched baseline, no serve_overhead_ms (short GPU calls)",
    )
    return parser.parse_args()


def build_model(shape: str, tokenizer_dir: str, directory: Path) -> Path:
    """A random-weight Qwen2 export (what jobs/export.py writes), taiyi chat format."""
    import torch

    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.result import write_random_export

    dims = QWEN25_05B if shape == "qwen2.5-0.5b" else TINY
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    return write_random_export(directory, tokenizer_dir, TinyQwen2Shape(**dims), dtype=dtype)


def sizes_of(args: argparse.Namespace) -> list[int]:
    """The max_tokens values requests cycle through (one value: the fixed workload)."""
    if args.workload == "fixed":
        return [args.max_tokens]
    return [int(size) for size in args.mixed_tokens.split(",")]


def levels_of(args: argparse.Namespace) -> list[int]:
    return [int(level) for level in args.concurrency.split(",")]


def requests_at(args: argparse.Namespace, concurrency: int) -> int:
    """max(48, per-client x concurrency), rounded up so that every size gets the same number."""
    count = max(48, args.requests_per_client * concurrency)
    return -(-count // len(sizes_of(args))) * len(sizes_of(args))


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _device_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    return {"device": args.device, "gpu": gpu, "load_average_1m": round(os.getloadavg()[0], 2),
            "shape": args.shape}  # fmt: skip


def _run_info(args: argparse.Namespace) -> dict[str, Any]:
    """The workload's max_tokens (a list when mixed), then the device."""
    max_tokens = sizes_of(args) if args.workload == "mixed" else args.max_tokens
    return {"max_tokens": max_tokens, **_device_info(args)}


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 2)


# ---------------------------------------------------------------- in-process (ContinuousBatcher alone)


@functools.cache
def load_local(model_dir: Path, device: str):
    """The model in this process, with as many torch threads as a replica (num_cpus_per_replica = 1)."""
    import torch

    from taiyi_ray.model.factory import load_for_inference

    if device == "cpu":
        torch.set_num_threads(1)
    return load_for_inference(model_dir, device)


def prompt_ids(loaded) -> list[int]:
    """The benchmark prompt in the model's chat format, tokenised as the endpoint does."""
    from taiyi_ray.data.schema import Message

    text = loaded.chat_format.prompt_text([Message(role="user", content=PROMPT)])
    return loaded.tokenizer(text, add_special_tokens=False)["input_ids"]


def synchronize(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def decode_step_ms(
    args: argparse.Namespace,
    model_dir: Path,
    steps: int = 64,
    cudnn_attention: bool = False,
    cuda_graphs: bool = False,
) -> dict[str, Any]:
    """Median time of one decoding step of a single running sequence (after its prefill), in-process;
    `cudnn_attention` turns SDPA's cuDNN backend back on (it is off in decoding processes) to compare;
    `cuda_graphs`: the step replayed from a CUDA graph (`serve.cuda_graphs`)."""
    import torch

    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.generation import SamplingParams

    loaded = load_local(model_dir, args.device)
    torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)
    batcher = ContinuousBatcher.for_model(loaded, max_sequences=1, cuda_graphs=cuda_graphs)
    batcher.submit(prompt_ids(loaded), SamplingParams(max_new_tokens=steps + 8))
    timings = []
    for _ in range(steps + 4):  # the prefill and three warm-up steps are not counted
        synchronize(args.device)
        started = time.perf_counter()
        batcher.step(loaded)
        synchronize(args.device)
        timings.append(time.perf_counter() - started)
    counted = timings[4:]
    return {"metric": "decode_step_ms", "batch_size": 1, "value": round(1000 * statistics.median(counted), 3),
            "p90_ms": round(1000 * sorted(counted)[int(0.9 * len(counted))], 3), "steps": len(counted),
            "goal_ms": 10, "cudnn_attention": cudnn_attention, "cuda_graphs": batcher.graphs is not None,
            **_device_info(args)}  # fmt: skip


def graphs_agreement(args: argparse.Namespace, model_dir: Path, rows: int = 16) -> dict[str, Any]:
    """How closely the GPU paths follow the exact per-sequence one on this device: `rows` greedy sequences
    (different prompt lengths, joining together) decoded with exact attention, batched attention, and
    batched attention replayed from CUDA graphs. Per path: the share of sequences with exactly the exact
    path's tokens, the mean share of their tokens before the first difference, and the largest logprob
    difference at the first decoding step (bf16: not bitwise, the paths multiply different row counts)."""
    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.generation import SamplingParams, end_token_id

    loaded = load_local(model_dir, args.device)
    base, end_id = prompt_ids(loaded), end_token_id(loaded)
    prompts = [base[: max(1, len(base) - i)] for i in range(rows)]
    params = SamplingParams(max_new_tokens=max(2, args.max_tokens), logprobs=0)
    paths = {"exact": ("exact", False), "batched": ("batched", False), "graphed": ("batched", True)}
    decoded = {}
    for name, (attention, graphs) in paths.items():
        # the constructor, not for_model: on a CPU too the graphed path runs (its static pass, eagerly)
        batcher = ContinuousBatcher(loaded.tokenizer, end_id, rows, attention=attention, graphs=graphs)  # type: ignore[arg-type]
        decoded[name] = batcher.generate(loaded, prompts, params)
    record: dict[str, Any] = {"metric": "graphs_agreement", "against": "exact", "rows": rows,
                              "max_tokens": args.max_tokens}  # fmt: skip
    for name in ("batched", "graphed"):
        pairs = list(zip(decoded["exact"], decoded[name], strict=True))
        prefixes = [_common_prefix(a.token_ids, b.token_ids) / max(1, len(a.token_ids)) for a, b in pairs]
        # token 1 comes from the first decoding step (token 0 from the prefill, the same eager pass in all)
        first = [abs(a.logprobs[1].logprob - b.logprobs[1].logprob) for a, b in pairs]  # type: ignore[index]
        record[name] = {"same_sequences": round(sum(a.token_ids == b.token_ids for a, b in pairs) / rows, 3),
                        "mean_common_prefix": round(statistics.mean(prefixes), 3),
                        "max_first_step_logprob_diff": round(max(first), 6)}  # fmt: skip
    return {**record, **_device_info(args)}


def _common_prefix(first: list[int], second: list[int]) -> int:
    return next(
        (i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )


def engine_fixed(args: argparse.Namespace, model_dir: Path) -> None:
    """Decoder throughput per batch size (greedy, every row runs max_tokens)."""
    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.generation import SamplingParams

    loaded = load_local(model_dir, args.device)
    ids, info = prompt_ids(loaded), _run_info(args)
    rates = {}
    for batch_size in levels_of(args):
        batcher = ContinuousBatcher.for_model(loaded, max_sequences=batch_size)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            batcher.generate(loaded, [ids] * batch_size, SamplingParams(max_new_tokens=args.max_tokens))
            synchronize(args.device)
            timings.append(time.perf_counter() - started)
        seconds = statistics.median(timings[1:])
        rates[batch_size] = batch_size * args.max_tokens / seconds
        emit({"mode": "in_process", "batch_size": batch_size, "tokens_per_s": round(rates[batch_size], 1),
              "batch_latency_ms": round(1000 * seconds, 2), **info})  # fmt: skip
    emit({"metric": "in_process_batching_gain", "batch_size": max(rates), **info,
          "throughput_ratio": ratio(rates[max(rates)], rates[min(rates)])})  # fmt: skip


def engine_mixed(args: argparse.Namespace, model_dir: Path) -> None:
    """The mixed closed loop against `ContinuousBatcher` directly, continuous vs static scheduling
    (interleaved level by level, so that both see the same load on the machine)."""
    from taiyi_ray.model.engine import ContinuousBatcher

    loaded = load_local(model_dir, args.device)
    ids, sizes = prompt_ids(loaded), sizes_of(args)
    batchers = {s: ContinuousBatcher.for_model(loaded, args.batch_size, scheduling=s) for s in SCHEDULINGS}
    for batcher in batchers.values():
        engine_closed_loop(loaded, batcher, ids, sizes, 4, 4 * len(sizes))  # warm-up
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for concurrency in levels_of(args):
        for scheduling, batcher in batchers.items():
            timings = engine_closed_loop(
                loaded, batcher, ids, sizes, concurrency, requests_at(args, concurrency)
            )
            results[(scheduling, concurrency)] = summarise(timings)
            emit({"mode": scheduling, "workload": "mixed", "concurrency": concurrency,
                  **results[(scheduling, concurrency)], "in_process": True, **_run_info(args)})  # fmt: skip
    gain = continuous_gain(results, levels_of(args), min(sizes))
    emit({**gain, "metric": "in_process_continuous_gain", **_run_info(args)})


def engine_only(args: argparse.Namespace, model_dir: Path) -> None:
    if args.workload == "mixed":
        engine_mixed(args, model_dir)
    else:
        engine_fixed(args, model_dir)
    emit(decode_step_ms(args, model_dir))


# ---------------------------------------------------------------- through HTTP and Ray Serve


def overhead(args: argparse.Namespace, url: str, model_dir: Path, pairs: int = 40) -> dict[str, Any]:
    """p50 of one request through HTTP + Serve vs p50 of the same tokenise + decode in this process.

    The two are interleaved (one of each, `pairs` times) so that both see the same load on the machine.
    """
    import httpx

    from taiyi_ray.model.engine import ContinuousBatcher
    from taiyi_ray.model.generation import SamplingParams

    loaded = load_local(model_dir, args.device)
    batcher = ContinuousBatcher.for_model(loaded, max_sequences=1)
    params = SamplingParams(max_new_tokens=args.max_tokens)
    served, local = [], []
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(pairs + 3):
            started = time.perf_counter()
            client.post("/v1/chat/completions", json=chat_body(args.max_tokens)).raise_for_status()
            served.append(time.perf_counter() - started)
            started = time.perf_counter()
            batcher.generate(loaded, [prompt_ids(loaded)], params)
            synchronize(args.device)
            local.append(time.perf_counter() - started)
    p50_served, p50_local = 1000 * statistics.median(served[3:]), 1000 * statistics.median(local[3:])
    return {"metric": "serve_overhead_ms", "value": round(p50_served - p50_local, 2), "pairs": pairs,
            "max_tokens": args.max_tokens, "p50_serve_ms": round(p50_served, 2),
            "p50_in_process_ms": round(p50_local, 2)}  # fmt: skip


@dataclass(frozen=True)
class Setting:
    """One deployment to compare: its line's "mode" and the engine settings that differ."""

    mode: str
    batch_size: int
    scheduling: Scheduling = "continuous"

    @property
    def prefix(self) -> str:
        return f"/{self.mode}"


def deploy(args: argparse.Namespace, model_dir: Path, setting: Setting) -> None:
    """(Re)deploy `setting` as application "bench-<mode>" on route "/<mode>": one 1-CPU replica."""
    from ray import serve

    from taiyi_ray.config.serving import ServeConfig
    from taiyi_ray.serve.app import build_application

    config = ServeConfig(
        model=str(model_dir), max_batch_size=setting.batch_size, scheduling=setting.scheduling,
        max_ongoing_requests=max(32, setting.batch_size), max_queued_requests=1024, num_cpus_per_replica=1,
        num_gpus_per_replica=1 if args.device == "cuda" else 0, max_tokens_limit=max(1024, *sizes_of(args)),
        cuda_graphs=args.cuda_graphs,
    )  # fmt: skip
    serve.run(build_application(config), name=f"bench-{setting.mode}", route_prefix=setting.prefix)


def compare(
    args: argparse.Namespace, model_dir: Path, url: str, settings: list[Setting]
) -> dict[tuple[str, int], Any]:
    """Each concurrency level on each setting, so that the settings compared at one level see the same
    load on the machine: at concurrency 1 side by side, request by request (`http_paired_loop`: there
    every setting does the same work, one sequence at a time, so only the machine's drift could tell
    them apart); above it in turn, each deployed alone and warmed up. One line per setting and level;
    the serve_overhead_ms line after the first level (one request at a time on the last setting)."""
    sizes = sizes_of(args)
    results: dict[tuple[str, int], Any] = {}
    for concurrency in levels_of(args):
        if concurrency == 1:
            for setting in settings:
                deploy(args, model_dir, setting)
                asyncio.run(http_closed_loop(url, setting.prefix, sizes, 4, 4 * len(sizes)))  # warm-up
            prefixes = [setting.prefix for setting in settings]
            level = asyncio.run(http_paired_loop(url, prefixes, sizes, requests_at(args, concurrency)))
            for setting, timings in zip(settings, level, strict=True):
                _record(args, results, setting, timings)
        else:
            for setting in settings:
                _delete_others(settings, keep=setting)
                deploy(args, model_dir, setting)
                asyncio.run(http_closed_loop(url, setting.prefix, sizes, 4, 4 * len(sizes)))  # warm-up
                requests = requests_at(args, concurrency)
                _record(args, results, setting, asyncio.run(
                    http_closed_loop(url, setting.prefix, sizes, concurrency, requests)
                ))  # fmt: skip
        if concurrency == levels_of(args)[0] and not args.batched_only:
            emit({**overhead(args, url + settings[-1].prefix, model_dir), **_device_info(args)})
    _delete_others(settings, keep=None)
    return results


def _record(
    args: argparse.Namespace, results: dict[tuple[str, int], Any], setting: Setting, timings: LevelTimings
) -> None:
    results[(setting.mode, timings.concurrency)] = summarise(timings)
    emit({"mode": setting.mode, "workload": args.workload, "concurrency": timings.concurrency,
          **results[(setting.mode, timings.concurrency)], "max_batch_size": setting.batch_size,
          **_run_info(args)})  # fmt: skip


def _delete_others(settings: list[Setting], keep: Setting | None) -> None:
    """Delete every setting's application but `keep`'s (deleting one that is not running is a no-op)."""
    from ray import serve

    for setting in settings:
        if setting != keep:
            serve.delete(f"bench-{setting.mode}")


def continuous_gain(
    results: dict[tuple[str, int], dict[str, Any]], levels: list[int], shortest: int
) -> dict[str, Any]:
    top, bottom = max(levels), min(levels)
    continuous, static = results[("continuous", top)], results[("static", top)]
    key = f"p99_{shortest}_tokens_ms"
    return {
        "metric": "continuous_gain", "concurrency": top,
        "throughput_ratio": ratio(continuous["throughput_rps"], static["throughput_rps"]),
        "p99_ratio": ratio(static[key], continuous[key]),
        "throughput_ratio_c1": ratio(results[("continuous", bottom)]["throughput_rps"],
                                     results[("static", bottom)]["throughput_rps"]),
    }  # fmt: skip


def serve_mixed(args: argparse.Namespace, model_dir: Path, url: str) -> None:
    settings = [Setting(scheduling, args.batch_size, scheduling) for scheduling in SCHEDULINGS]
    results = compare(args, model_dir, url, settings)
    emit({**continuous_gain(results, levels_of(args), min(sizes_of(args))), **_run_info(args)})


def serve_fixed(args: argparse.Namespace, model_dir: Path, url: str) -> None:
    unbatched = [] if args.batched_only else [Setting("unbatched", 1)]
    results = compare(args, model_dir, url, [Setting("batched", args.batch_size), *unbatched])
    if args.batched_only:
        return
    top = max(levels_of(args))
    batched, unbatched = results[("batched", top)], results[("unbatched", top)]
    emit({"metric": "batching_gain", "concurrency": top,
          "throughput_ratio": ratio(batched["throughput_rps"], unbatched["throughput_rps"]),
          "p99_batched_ms": batched["p99_ms"], "p99_unbatched_ms": unbatched["p99_ms"],
          **_run_info(args)})  # fmt: skip


def run(args: argparse.Namespace, model_dir: Path) -> None:
    """One Serve instance on a free port of 127.0.0.1, the workload's deployments in turn, then shutdown."""
    from ray import serve

    from taiyi_ray.config.platform import RayConfig
    from taiyi_ray.runtime import init_ray

    if args.device == "cuda":  # before Serve holds the GPU: the step time of the engine alone
        emit(decode_step_ms(args, model_dir, cudnn_attention=True))  # as before prefer_decoding_attention
        emit(decode_step_ms(args, model_dir))
        for check in (functools.partial(decode_step_ms, cuda_graphs=True), graphs_agreement):
            try:  # the graphed path's first run on a GPU: a failure must not cost the other figures
                emit(check(args, model_dir))
            except Exception as error:  # noqa: BLE001
                emit({"metric": getattr(check, "__name__", "decode_step_ms"), "cuda_graphs": True,
                      "error": f"{type(error).__name__}: {error}"[:2000]})  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    init_ray(RayConfig(num_cpus=4))  # GPUs are detected by Ray itself
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 600})
    try:
        (serve_mixed if args.workload == "mixed" else serve_fixed)(args, model_dir, url)
    finally:
        serve.shutdown()  # last: Ray's shutdown messages must not interleave with the JSON lines


def main() -> None:
    args = parse_args()
    prepare_process_env()
    with tempfile.TemporaryDirectory(prefix="taiyi-bench-") as scratch:
        model_dir = Path(args.model) if args.model else build_model(args.shape, args.tokenizer, Path(scratch))
        if args.engine_only:
            engine_only(args, model_dir)
        else:
            run(args, model_dir)


if __name__ == "__main__":
    main()
