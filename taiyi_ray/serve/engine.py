"""Dynamic batching: requests that arrive together are decoded together (`@serve.batch`).

Each request becomes a `GenerationRequest` (token ids + `SamplingParams`) handed to a `serve.batch`-wrapped
method; Serve collects up to `max_batch_size` of them, waiting at most `batch_wait_timeout_s` for the batch
to fill. The batch is decoded on one worker thread (so the event loop keeps accepting requests, which form
the next batch meanwhile), grouped by model id, with `taiyi_ray.model.generation.decode`.

Results do not wait for the whole batch: every request owns an event queue that the decoding thread feeds
(text deltas for streaming, then the finished completion), so a short answer returns as soon as its row
ends. A request whose client went away is marked cancelled and its row stops at the next step.

Seeds are honoured exactly: a request with `seed` is decoded in a group of its own, with a torch.Generator
seeded from it. Its tokens then depend only on (model, prompt, parameters, seed): batching it with other
prompts would change the padding and the shapes of the matrix products, whose floating-point sums can
differ in the last bits and flip a sampled (or argmax) token. Requests without a seed are batched.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ray import serve

from taiyi_ray.model.generation import Completion, SamplingParams, TokenLogprob, decode, prompt_logprobs
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

    @property
    def batch_key(self) -> tuple[str, int]:
        """Requests with equal keys are decoded together; a seeded request's key is its own."""
        return (self.model_id, id(self) if self.params.seed is not None else 0)

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
    batches: int = 0
    requests: int = 0
    largest_batch: int = 0


class Engine:
    """Batches `GenerationRequest`s and decodes them on one thread; see the module docstring."""

    def __init__(self, registry: ModelRegistry, max_batch_size: int, batch_wait_timeout_s: float) -> None:
        self._registry = registry
        # One thread: decoding is CPU/GPU bound, and adapters are switched on the one shared model.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taiyi-decode")
        self._batched = serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_timeout_s)(
            self._run_batch
        )
        self.stats = EngineStats()

    async def events(self, request: GenerationRequest) -> AsyncIterator[tuple[str, object]]:
        """("delta", text)... then ("done", Finished). Raises what the decoding raised; cancels on exit."""
        submitted = asyncio.ensure_future(self._batched(request))
        finished = False
        try:
            while not finished:
                kind, value = await _next_event(request, submitted)
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

    async def _run_batch(self, requests: list[GenerationRequest]) -> list[None]:
        self.stats.batches += 1
        self.stats.requests += len(requests)
        self.stats.largest_batch = max(self.stats.largest_batch, len(requests))
        await asyncio.get_running_loop().run_in_executor(self._executor, self._decode_all, requests)
        return [None] * len(requests)

    def _decode_all(self, requests: list[GenerationRequest]) -> None:
        groups: dict[tuple[str, int], list[GenerationRequest]] = {}
        for request in requests:
            groups.setdefault(request.batch_key, []).append(request)
        for (model_id, _), group in groups.items():
            live = [request for request in group if not request.is_cancelled()]
            try:
                self._decode_group(model_id, live)
            except Exception as error:
                log.exception("decoding a batch of %d for %s failed", len(live), model_id)
                for request in live:
                    request.on_error(error)
            for request in group:
                if request not in live:
                    request.on_error(asyncio.CancelledError())

    def _decode_group(self, model_id: str, group: list[GenerationRequest]) -> None:
        if not group:
            return
        with self._registry.activate(model_id) as loaded:
            for request in group:
                if request.prompt_logprobs_top is not None:
                    request.prompt_logprobs = prompt_logprobs(
                        loaded, request.prompt_ids, request.prompt_logprobs_top
                    )
            decode(loaded, [r.prompt_ids for r in group], [r.params for r in group], listeners=group)


async def _next_event(request: GenerationRequest, submitted: asyncio.Future) -> tuple[str, object]:
    """The request's next event; if the batch call itself failed first, its exception as an error event."""
    getter = asyncio.ensure_future(request._events.get())
    try:
        done, _ = await asyncio.wait({getter, submitted}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        error = submitted.exception()
        if error is not None:
            return ("error", error)
        return await getter  # the batch returned; its events are already queued
    finally:
        if not getter.done():
            getter.cancel()
