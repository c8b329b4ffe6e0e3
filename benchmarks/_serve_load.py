"""Load generators of `benchmarks/serve.py`: closed-loop clients over HTTP and the same loop in-process.

Both hand out requests from one shared sequence of `max_tokens` values (request i gets
`sizes[i % len(sizes)]`), so a level of 3k requests has exactly k of each size whatever order the clients
finish in, and both summarise a level the same way (`summarise`): throughput, p50/p99 of all requests,
p99 of the shortest requests.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROMPT = "Extract the chemicals and diseases: Famotidine-associated delirium. A series of six cases."


@dataclass
class LevelTimings:
    """One concurrency level: each request's latency (s) by its max_tokens, the wall time, the steps."""

    concurrency: int
    latencies: dict[int, list[float]] = field(default_factory=dict)
    completion_tokens: int = 0
    elapsed_s: float = 0.0
    engine_steps: int = 0  # decoding steps the engine ran meanwhile (forward passes)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per process role meanwhile

    def record(self, max_tokens: int, seconds: float, completion_tokens: int) -> None:
        self.latencies.setdefault(max_tokens, []).append(seconds)
        self.completion_tokens += completion_tokens


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: with 48 values p99 is the slowest one)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(timings: LevelTimings) -> dict[str, Any]:
    """throughput_rps, p50_ms, p99_ms, p99_<shortest>_tokens_ms (when sizes are mixed), then the counts."""
    every = [seconds for values in timings.latencies.values() for seconds in values]
    summary: dict[str, Any] = {
        "throughput_rps": round(len(every) / timings.elapsed_s, 2),
        "p50_ms": _ms(statistics.median(every)),
        "p99_ms": _ms(percentile(every, 0.99)),
    }
    if len(timings.latencies) > 1:
        shortest = min(timings.latencies)
        summary[f"p99_{shortest}_tokens_ms"] = _ms(percentile(timings.latencies[shortest], 0.99))
    steps = max(1, timings.engine_steps)
    return summary | {
        "requests": len(every),
        "elapsed_s": round(timings.elapsed_s, 3),
        "tokens_per_s": round(timings.completion_tokens / timings.elapsed_s, 1),
        "engine_steps": timings.engine_steps,
        "rows_per_step": round(timings.completion_tokens / steps, 2),  # the mean running batch
        "ms_per_step": _ms(timings.elapsed_s / steps),  # wall time / steps (idle time included)
        **({"cpu_ms_per_request": _cpu_per_request(timings.cpu_s, len(every))} if timings.cpu_s else {}),
    }


def _cpu_per_request(cpu_s: dict[str, float], requests: int) -> dict[str, float]:
    return {role: round(1000 * seconds / requests, 2) for role, seconds in sorted(cpu_s.items())}


ROLES = {"ServeReplica": "replica", "ProxyActor": "proxy", "ServeController": "controller"}


def process_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) so far of this process ("client") and every process it started, by
    role: the Serve replica (its HTTP side), its engine process ("engine"), the proxy and controller, and
    the rest of Ray ("ray_other")."""
    import psutil

    here = psutil.Process()
    totals: dict[str, float] = {}
    for process in [here, *here.children(recursive=True)]:
        try:
            times, title = process.cpu_times(), " ".join(process.cmdline())
        except psutil.Error:  # ended meanwhile
            continue
        role = "client" if process.pid == here.pid else "ray_other"
        role = next((name for marker, name in ROLES.items() if marker in title), role)
        if role == "ray_other" and _is_engine_process(process):
            role = "engine"
        totals[role] = totals.get(role, 0.0) + times.user + times.system
    return totals


def _is_engine_process(process) -> bool:
    """A process a Serve replica spawned: its engine process (`taiyi_ray.serve.engine.EngineProcess`)."""
    import psutil

    try:
        parent = process.parent()
        return parent is not None and "ServeReplica" in " ".join(parent.cmdline())
    except psutil.Error:
        return False


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def chat_body(max_tokens: int) -> dict[str, Any]:
    """A greedy chat request (a random model never emits its end token: it does exactly max_tokens)."""
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0}


def _session(url: str, concurrency: int):
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    return aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=600))


async def _health_steps(client, prefix: str) -> int:
    async with client.get(f"{prefix}/healthz") as response:
        return int((await response.json())["steps"])


async def _chat(client, prefix: str, max_tokens: int, timings: LevelTimings) -> float:
    """One greedy chat request to the application at `prefix`, recorded in `timings`; its latency (s)."""
    started = time.perf_counter()
    async with client.post(f"{prefix}/v1/chat/completions", json=chat_body(max_tokens)) as response:
        response.raise_for_status()
        answer = await response.json()
    seconds = time.perf_counter() - started
    timings.record(max_tokens, seconds, answer["usage"]["completion_tokens"])
    return seconds


async def http_closed_loop(
    url: str, prefix: str, sizes: Sequence[int], concurrency: int, requests: int
) -> LevelTimings:
    """`concurrency` clients of the application at `prefix`, each sending its next request when the
    previous one is answered. aiohttp, not httpx: the load generator shares the machine with the server,
    and at concurrency 32 it spent 0.6-0.9 ms of CPU per request here against 1.6 ms with httpx (vLLM's
    serving benchmark uses it too)."""
    timings = LevelTimings(concurrency)
    queue = iter(range(requests))
    async with _session(url, concurrency) as client:
        steps_before, cpu_before = await _health_steps(client, prefix), process_cpu_s()

        async def worker() -> None:
            for index in queue:
                await _chat(client, prefix, sizes[index % len(sizes)], timings)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        timings.elapsed_s = time.perf_counter() - started
        timings.engine_steps = await _health_steps(client, prefix) - steps_before
        cpu_after = process_cpu_s()
        timings.cpu_s = {role: cpu_after[role] - cpu_before.get(role, 0.0) for role in cpu_after}
    return timings


async def http_paired_loop(
    url: str, prefixes: Sequence[str], sizes: Sequence[int], requests: int
) -> list[LevelTimings]:
    """Concurrency 1 against several applications side by side, request by request: request i goes to
    each of them in turn (in reverse order every other time), so that a drift in the machine's speed
    reaches all of them alike. Each one's elapsed time is the sum of its latencies (one request in flight
    at a time); no per-process CPU figures (the applications' processes share their roles)."""
    every = [LevelTimings(1) for _ in prefixes]
    async with _session(url, 1) as client:
        steps_before = [await _health_steps(client, prefix) for prefix in prefixes]
        for index in range(requests):
            order = list(zip(prefixes, every, strict=True))
            for prefix, timings in order if index % 2 == 0 else reversed(order):
                timings.elapsed_s += await _chat(client, prefix, sizes[index % len(sizes)], timings)
        for prefix, timings, before in zip(prefixes, every, steps_before, strict=True):
            timings.engine_steps = await _health_steps(client, prefix) - before
    return every


def engine_closed_loop(
    loaded, batcher, prompt_ids: list[int], sizes: Sequence[int], concurrency: int, requests: int
) -> LevelTimings:
    """The HTTP loop's twin in this process: `concurrency` sequences in flight in `batcher`, each
    replaced by the next request as soon as a step finishes it (no HTTP, no Serve, no event loop)."""
    from taiyi_ray.model.generation import SamplingParams

    timings = LevelTimings(concurrency)
    queue = iter(range(requests))
    in_flight: dict[Any, tuple[int, float]] = {}

    def submit_next() -> None:
        index = next(queue, None)
        if index is not None:
            max_tokens = sizes[index % len(sizes)]
            sequence = batcher.submit(prompt_ids, SamplingParams(max_new_tokens=max_tokens))
            in_flight[sequence] = (max_tokens, time.perf_counter())

    steps_before = batcher.stats.steps
    started = time.perf_counter()
    for _ in range(concurrency):
        submit_next()
    while in_flight:
        batcher.step(loaded)
        for sequence in [s for s in in_flight if s.result is not None]:
            max_tokens, submitted = in_flight.pop(sequence)
            timings.record(max_tokens, time.perf_counter() - submitted, len(sequence.result.token_ids))
            submit_next()
    timings.elapsed_s = time.perf_counter() - started
    timings.engine_steps = batcher.stats.steps - steps_before
    return timings
