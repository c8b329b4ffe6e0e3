"""Serving benchmark: dynamic batching vs none, and what Ray Serve adds per request. One JSON line each.

    python benchmarks/serve.py                                  # tiny random Qwen2 on CPU (the tests' model)
    python benchmarks/serve.py --shape qwen2.5-0.5b --device cuda  # a Qwen2.5-0.5B-shaped model on a GPU

In one run, on one Serve instance on 127.0.0.1: the same application deployed with `max_batch_size`
= `--batch-size` ("batched") and = 1 ("unbatched"), each driven closed-loop at concurrency 1, 8 and 32 with
greedy chat requests of `--max-tokens` tokens (a random model never stops early, so every request does
the same work). Lines:
  {"mode", "concurrency", "requests", "throughput_rps", "tokens_per_s", "p50_ms", "p99_ms", ...}
  {"metric": "batching_gain", "concurrency": 32, "throughput_ratio", "p99_batched_ms", "p99_unbatched_ms"}
  {"metric": "serve_overhead_ms", ...}: p50 of one request through HTTP + Serve (unbatched deployment, one
  at a time) minus p50 of the same tokenise + decode called in-process with the same thread count,
  interleaved so that both see the same machine load.
`--engine-only` skips Ray and HTTP: the decoder alone at batch sizes 1, 8 and 32 (for machines without Ray).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from taiyi_ray.runtime import prepare_process_env

PROMPT = "Extract the chemicals and diseases: Famotidine-associated delirium. A series of six cases."
# Qwen2.5-0.5B (config.json of Qwen/Qwen2.5-0.5B); the vocabulary comes from the tokenizer.
QWEN25_05B = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
    "num_key_value_heads": 2, "max_position_embeddings": 32768, "tie_word_embeddings": True, "rope_theta": 1e6,
}  # fmt: skip
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported model directory (default: build a random one)")
    parser.add_argument("--shape", choices=["tiny", "qwen2.5-0.5b"], default="tiny")
    parser.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "tokenizers" / "qwen2"))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument(
        "--requests-per-client", type=int, default=6, help="requests = max(48, this x concurrency)"
    )
    parser.add_argument("--engine-only", action="store_true", help="the decoder in-process only, no Ray/HTTP")
    return parser.parse_args()


def build_model(shape: str, tokenizer_dir: str, directory: Path) -> Path:
    """A random-weight Qwen2 export (what jobs/export.py writes), taiyi chat format."""
    import torch

    from taiyi_ray.config.model import TinyQwen2Shape
    from taiyi_ray.model.result import write_random_export

    dims = QWEN25_05B if shape == "qwen2.5-0.5b" else TINY
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    return write_random_export(directory, tokenizer_dir, TinyQwen2Shape(**dims), dtype=dtype)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def closed_loop(url: str, body: dict[str, Any], concurrency: int, requests: int) -> dict[str, Any]:
    """`concurrency` clients each sending their next request when the previous one is answered."""
    import httpx

    latencies: list[float] = []
    tokens = 0
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            nonlocal tokens
            for _ in queue:
                started = time.perf_counter()
                response = await client.post("/v1/chat/completions", json=body)
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency, "requests": requests, "elapsed_s": round(elapsed, 3),
        "throughput_rps": round(requests / elapsed, 2), "tokens_per_s": round(tokens / elapsed, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2), "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
    }  # fmt: skip


def overhead(url: str, model_dir: Path, body: dict[str, Any], device: str, pairs: int = 40) -> dict[str, Any]:
    """p50 of one request through HTTP + Serve vs p50 of the same tokenise + decode in this process.

    The two are interleaved (one of each, `pairs` times) so that both see the same load on the machine.
    """
    import httpx
    import torch

    from taiyi_ray.data.schema import Message
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import SamplingParams, decode

    if device == "cpu":
        torch.set_num_threads(1)  # as many threads as the replica has (num_cpus_per_replica = 1)
    loaded = load_for_inference(model_dir, device)
    params = SamplingParams(max_new_tokens=body["max_tokens"])
    served, local = [], []
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(pairs + 3):
            started = time.perf_counter()
            client.post("/v1/chat/completions", json=body).raise_for_status()
            served.append(time.perf_counter() - started)
            started = time.perf_counter()
            text = loaded.chat_format.prompt_text([Message(role="user", content=PROMPT)])
            decode(loaded, [loaded.tokenizer(text, add_special_tokens=False)["input_ids"]], [params])
            if device == "cuda":
                torch.cuda.synchronize()
            local.append(time.perf_counter() - started)
    p50_served, p50_local = 1000 * statistics.median(served[3:]), 1000 * statistics.median(local[3:])
    return {"metric": "serve_overhead_ms", "value": round(p50_served - p50_local, 2), "pairs": pairs,
            "p50_serve_ms": round(p50_served, 2), "p50_in_process_ms": round(p50_local, 2)}  # fmt: skip


def engine_only(args: argparse.Namespace, model_dir: Path) -> None:
    """Decoder throughput per batch size, in this process (greedy, every row runs max_tokens)."""
    import torch

    from taiyi_ray.data.schema import Message
    from taiyi_ray.model.factory import load_for_inference
    from taiyi_ray.model.generation import SamplingParams, decode

    if args.device == "cpu":
        torch.set_num_threads(1)  # as a replica with num_cpus_per_replica = 1
    loaded = load_for_inference(model_dir, args.device)
    text = loaded.chat_format.prompt_text([Message(role="user", content=PROMPT)])
    ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"]
    info = _device_info(args)
    rates = {}
    for batch_size in [int(level) for level in args.concurrency.split(",")]:
        params = [SamplingParams(max_new_tokens=args.max_tokens)] * batch_size
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            decode(loaded, [ids] * batch_size, params)
            if args.device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - started)
        seconds = statistics.median(timings[1:])
        rates[batch_size] = batch_size * args.max_tokens / seconds
        emit({"mode": "in_process", "batch_size": batch_size, "tokens_per_s": round(rates[batch_size], 1),
              "batch_latency_ms": round(1000 * seconds, 2), **info})  # fmt: skip
    emit({"metric": "in_process_batching_gain", "batch_size": max(rates), **info,
          "throughput_ratio": round(rates[max(rates)] / rates[min(rates)], 2)})  # fmt: skip


def _device_info(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    return {"device": args.device, "gpu": gpu, "load_average_1m": round(os.getloadavg()[0], 2),
            "shape": args.shape, "max_tokens": args.max_tokens}  # fmt: skip


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def run(args: argparse.Namespace, model_dir: Path) -> None:
    from ray import serve

    from taiyi_ray.config.platform import RayConfig
    from taiyi_ray.config.serving import ServeConfig
    from taiyi_ray.runtime import init_ray
    from taiyi_ray.serve.app import build_application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    levels = [int(level) for level in args.concurrency.split(",")]
    gpus = 1 if args.device == "cuda" else 0
    init_ray(RayConfig(num_cpus=4))  # GPUs are detected by Ray itself
    serve.start(http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": 600})
    device = _device_info(args)
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
    }
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for mode, batch_size in (("batched", args.batch_size), ("unbatched", 1)):
        config = ServeConfig(
            model=str(model_dir), max_batch_size=batch_size, max_ongoing_requests=max(32, batch_size),
            max_queued_requests=1024, num_gpus_per_replica=gpus, max_tokens_limit=max(1024, args.max_tokens),
        )  # fmt: skip
        serve.run(build_application(config), name="bench", route_prefix="/")
        asyncio.run(closed_loop(url, body, 4, 16))  # warm-up
        for concurrency in levels:
            requests = max(48, args.requests_per_client * concurrency)
            result = asyncio.run(closed_loop(url, body, concurrency, requests))
            results[(mode, concurrency)] = result
            emit({"mode": mode, "max_batch_size": batch_size, **result, **device})
        if batch_size == 1:  # no batch to wait for: what is left is Serve's own cost
            emit({**overhead(url, model_dir, body, args.device), **device})
        serve.delete("bench")
    top = max(levels)
    batched, unbatched = results[("batched", top)], results[("unbatched", top)]
    emit({
        "metric": "batching_gain", "concurrency": top,
        "throughput_ratio": round(batched["throughput_rps"] / unbatched["throughput_rps"], 2),
        "p99_batched_ms": batched["p99_ms"], "p99_unbatched_ms": unbatched["p99_ms"], **device,
    })  # fmt: skip
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
