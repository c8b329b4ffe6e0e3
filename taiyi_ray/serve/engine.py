"""The replica's decoding thread: requests from the event loop into `ContinuousBatcher`s, events back.

Every model id (the base, each adapter) has its own `ContinuousBatcher` (a KV cache belongs to the
weights that made it). One thread owns the model: it takes new requests (scoring an `echo` prompt first),
submits them, and runs one step of every batcher that has work, switching the adapter per step, so
requests join and leave the running batch at every decoding step (see `taiyi_ray.model.engine`). When it
was idle, it waits `batch_wait_timeout_s` after the first arrival so that a burst is prefilled together.

Results do not wait for the batch: every request owns an event queue that the decoding thread feeds
(text deltas for streaming, then the finished completion). A request whose client went away is marked
cancelled and leaves the batch at the next step.

Seeds are honoured exactly in any batch: greedy and seeded rows are batch-invariant (the engine's
docstring says how), so a seeded request needs no batch of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.model.engine import ContinuousBatcher
from taiyi_ray.model.generation import Completion, SamplingParams, TokenLogprob, prompt_logprobs
from taiyi_ray.serve.models import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finished:
    """A request's outcome: the completion, plus the prompt's token logprobs when `echo` asked for them."""

    completion: Completion
    prompt_logprobs: list[TokenLogprob | None] | None = None


@dataclass(eq=False)
class GenerationRequest:
    """One prompt to decode; also the `RowListener` through which the decoding thread reports back."""

    model_id: str
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool = False
    prompt_logprobs_top: int | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop, init=False)
    _events: asyncio.Queue = field(default_factory=asyncio.Queue, init=False)
    _cancelled: threading.Event = field(default_factory=threading.Event, init=False)

    def on_delta(self, text: str) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, ("delta", text))

    def on_done(self, completion: Completion) -> None:
        self._loop.call_soon_threadsafe(
            self._events.put_nowait, ("done", Finished(completion, self.prompt_logprobs))
        )

    def on_error(self, error: BaseException) -> None:
        self._loop.call_soon_threadsafe(self._events.put_nowait, ("error", error))

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()


@dataclass
class EngineStats:
    steps: int = 0
    requests: int = 0
    largest_batch: int = 0


class Engine:
    """Feeds `GenerationRequest`s to the decoding thread; see the module docstring."""

    def __init__(self, registry: ModelRegistry, config: ServeConfig) -> None:
        self._registry = registry
        self._config = config
        self._batchers: dict[str, ContinuousBatcher] = {}
        self._incoming: deque[GenerationRequest] = deque()
        self._wake = threading.Condition()
        self.stats = EngineStats()
        self._thread = threading.Thread(target=self._decode_forever, name="taiyi-decode", daemon=True)
        self._thread.start()

    async def events(self, request: GenerationRequest) -> AsyncIterator[tuple[str, object]]:
        """("delta", text)... then ("done", Finished). Raises what the decoding raised; cancels on exit."""
        with self._wake:
            self._incoming.append(request)
            self._wake.notify()
        finished = False
        try:
            while not finished:
                kind, value = await request._events.get()
                if kind == "error":
                    raise value  # type: ignore[misc]
                finished = kind == "done"
                yield kind, value
        finally:
            if not finished:
                request.cancel()

    async def complete(self, request: GenerationRequest) -> Finished:
        async for kind, value in self.events(request):
            if kind == "done":
                return value  # type: ignore[return-value]
        raise RuntimeError("the decoding ended without a result")  # unreachable: events() ends on "done"

    def _decode_forever(self) -> None:
        while True:
            self._wait_for_work()
            self._take_incoming()
            for model_id, batcher in list(self._batchers.items()):
                if batcher.has_work():
                    self._step(model_id, batcher)

    def _wait_for_work(self) -> None:
        """Block while there is nothing to do; after idling, give a burst `batch_wait_timeout_s` to arrive."""
        busy = any(batcher.has_work() for batcher in self._batchers.values())
        with self._wake:
            if busy or self._incoming:
                return
            while not self._incoming:
                self._wake.wait()
        time.sleep(self._config.batch_wait_timeout_s)

    def _take_incoming(self) -> None:
        while True:
            with self._wake:
                if not self._incoming:
                    return
                request = self._incoming.popleft()
            if request.is_cancelled():
                request.on_error(asyncio.CancelledError())
                continue
            try:
                self._submit(request)
            except Exception as error:
                log.exception("accepting a request for %s failed", request.model_id)
                request.on_error(error)

    def _submit(self, request: GenerationRequest) -> None:
        with self._registry.activate(request.model_id) as loaded:
            if request.prompt_logprobs_top is not None:
                request.prompt_logprobs = prompt_logprobs(
                    loaded, request.prompt_ids, request.prompt_logprobs_top
                )
            batcher = self._batchers.get(request.model_id)
            if batcher is None:
                config = self._config
                batcher = ContinuousBatcher.for_model(
                    loaded, config.max_batch_size, config.max_step_tokens, config.scheduling
                )
                self._batchers[request.model_id] = batcher
        batcher.submit(request.prompt_ids, request.params, request)
        self.stats.requests += 1

    def _step(self, model_id: str, batcher: ContinuousBatcher) -> None:
        try:
            with self._registry.activate(model_id) as loaded:
                batcher.step(loaded)
        except Exception as error:
            log.exception("a decoding step for %s failed; its requests fail with it", model_id)
            for sequence in batcher.abandon():
                if isinstance(sequence.listener, GenerationRequest):
                    sequence.listener.on_error(error)
        self.stats.steps = sum(b.stats.steps for b in self._batchers.values())
        self.stats.largest_batch = max(self.stats.largest_batch, batcher.stats.largest_batch)
