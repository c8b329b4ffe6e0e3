"""Pending sets -> outputs, through the cache and one generator run, finishing each set as it completes.

For every set the cache is read first; only prompts it lacks are sent to the generator (the Ray Data
actor pool, or the endpoint), and identical prompts are generated once. Outputs are written back to
the cache as they arrive, progress is logged per set, and a set is parsed, scored and saved the moment
its last prompt is answered — so a crash loses neither finished sets nor most of the current one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from taiyi_ray.eval.cache import CacheWriter, PredictionCache
from taiyi_ray.eval.finalise import SetResult, Timing, finalise_set
from taiyi_ray.eval.generation_types import OnResult, RawOutput, Request
from taiyi_ray.eval.sets import EvalItem, EvalSet
from taiyi_ray.storage import Storage

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 15.0

Generator = Callable[[Sequence[Request], OnResult], None]
"""Generates every request, calling back per finished prompt (actors or endpoint, bound to settings)."""


@dataclass
class _SetTracker:
    """Outputs of one set as they come: from the cache, then from the generator."""

    eval_set: EvalSet
    fingerprint: str
    outputs: dict[str, RawOutput]
    waiting: set[str]
    writer: CacheWriter
    cached: int
    generated: int = 0
    seconds: float = 0.0
    output_tokens: int = 0
    last_log: float = field(default_factory=time.perf_counter)

    def add(self, key: str, output: RawOutput, seconds: float) -> bool:
        """Record one output; True when the set has all of its outputs."""
        if key not in self.waiting:
            return False
        self.waiting.discard(key)
        self.outputs[key] = output
        self.writer.add(key, output)
        self.generated += 1
        self.seconds += seconds
        self.output_tokens += output.output_tokens or 0
        if time.perf_counter() - self.last_log > PROGRESS_EVERY_S:
            total = self.generated + len(self.waiting)
            log.info("%s: %d/%d prompts generated", self.eval_set.name, self.generated, total)
            self.last_log = time.perf_counter()
        return not self.waiting

    def finish(self, storage: Storage, run_dir: str) -> SetResult:
        self.writer.flush()
        by_item = {item.record.id: self.outputs[item.prompt_key] for item in self.eval_set.items}
        timing = Timing(self.generated, self.cached, round(self.seconds, 4), self.output_tokens)
        return finalise_set(self.eval_set, by_item, storage, run_dir, timing, self.fingerprint)


def requests_for(eval_set: EvalSet, keys: Sequence[str]) -> list[Request]:
    """One request per prompt key, shortest conversation first (less padding in each batch)."""
    by_key: dict[str, EvalItem] = {item.prompt_key: item for item in eval_set.items}
    requests = [
        Request(
            eval_set.name, key, json.dumps([m.model_dump() for m in by_key[key].messages], ensure_ascii=False)
        )
        for key in keys
    ]
    return sorted(requests, key=lambda request: len(request.messages_json))


def generate_sets(
    pending: Sequence[tuple[EvalSet, str]],
    cache: PredictionCache,
    generator: Generator,
    storage: Storage,
    run_dir: str,
) -> dict[str, SetResult]:
    """Results of every pending (set, fingerprint), generating what the cache does not hold."""
    results: dict[str, SetResult] = {}
    trackers: dict[str, _SetTracker] = {}
    requests: list[Request] = []
    for eval_set, fingerprint in pending:
        cached = cache.load(eval_set.name)
        keys = list(dict.fromkeys(item.prompt_key for item in eval_set.items))
        missing = [key for key in keys if key not in cached]
        outputs = {key: cached[key] for key in keys if key in cached}
        tracker = _SetTracker(
            eval_set, fingerprint, outputs, set(missing), cache.writer(eval_set.name), len(outputs)
        )
        log.info(
            "%s: %d prompts, %d cached, %d to generate", eval_set.name, len(keys), len(outputs), len(missing)
        )
        if missing:
            trackers[eval_set.name] = tracker
            requests += requests_for(eval_set, missing)
        else:
            results[eval_set.name] = tracker.finish(storage, run_dir)

    def on_result(set_name: str, key: str, output: RawOutput, seconds: float) -> None:
        tracker = trackers[set_name]
        if tracker.add(key, output, seconds):
            results[set_name] = tracker.finish(storage, run_dir)

    started = time.perf_counter()
    try:
        generator(requests, on_result)
    finally:  # on a failure too: what was generated stays in the cache for the rerun
        for name, tracker in trackers.items():
            if name not in results:
                tracker.writer.flush()
    unfinished = sorted(name for name in trackers if name not in results)
    if unfinished:
        raise RuntimeError(f"the generator returned without answering every prompt of {unfinished}")
    if requests:
        log.info("generated %d prompts in %.1f s", len(requests), time.perf_counter() - started)
    return results
