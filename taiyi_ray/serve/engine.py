"""The replica's engine: `ContinuousBatcher`s driven by one decoding thread, in a process of its own.

Every model id (the base, each adapter) has its own `ContinuousBatcher` (a KV cache belongs to the
weights that made it). One thread owns the model: it takes new requests (scoring an `echo` prompt first),
submits them, and runs one step of every batcher that has work, switching the adapter per step, so
requests join and leave the running batch at every decoding step (see `taiyi_ray.model.engine`). When it
was idle, it waits `batch_wait_timeout_s` after the first arrival so that a burst is prefilled together.
Results do not wait for the batch: each request hears its own events (text deltas when streaming, then
the finished completion); a request whose client went away is cancelled and leaves at the next step.

`Engine` is that loop in a thread of the calling process. A replica runs `EngineProcess`: the same loop
in a child process that holds the weights, while the replica's process keeps the HTTP side (Serve's
request path, validation, chat template, tokenizer, responses) and talks to it over a pipe. Why: the
decoding thread needs the GIL back after every torch op, and the HTTP side holds it for several ms per
request; sharing one interpreter, a step of the tiny model at concurrency 32 took 16.6 ms through Serve
against 8.3 ms alone, the decoding thread running 63% of the time (per-thread CPU, measured here). vLLM V1
splits its engine core from the API server for the same reason. The child ends with its replica: when
the pipe closes it exits.

Seeds are honoured exactly in any batch: greedy and seeded rows are batch-invariant (the engine's
docstring says how), so a seeded request needs no batch of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.model.engine import ContinuousBatcher
from taiyi_ray.model.generation import Completion, SamplingParams, TokenLogprob, prompt_logprobs
from taiyi_ray.serve.errors import APIError, retry_after
from taiyi_ray.serve.models import ModelRegistry, ModelSource

log = logging.getLogger(__name__)


class EngineUnavailable(APIError, RuntimeError):
    """The replica's engine is gone: it cannot decode until Serve replaces the replica (its health check
    fails meanwhile). Answered 503 with Retry-After, as an overload is: a client's retry reaches a healthy
    replica, where a 500 would say the request itself failed."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        message = f"this replica cannot decode ({reason}); retry"
        super().__init__(503, message, code="engine_unavailable", headers=retry_after(retry_after_s))


@dataclass(frozen=True)
class Finished:
    """A request's outcome: the completion, plus the prompt's token logprobs when `echo` asked for them."""

    completion: Completion
    prompt_logprobs: list[TokenLogprob | None] | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to decode (what crosses to the engine process)."""

    model_id: str
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool = False
    prompt_logprobs_top: int | None = None


@dataclass
class EngineStats:
    steps: int = 0
    requests: int = 0
    largest_batch: int = 0
    loaded: list[str] = field(default_factory=list)  # model ids whose weights are in memory


class Listener:
    """One request as the decoding thread sees it (a `RowListener`): where its events go."""

    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.stream = request.stream
        self.prompt_logprobs: list[TokenLogprob | None] | None = None
        self.request_id: int | None = None  # the engine process's key for it

    def on_delta(self, text: str) -> None:
        self.deliver("delta", text)

    def on_done(self, completion: Completion) -> None:
        self.deliver("done", Finished(completion, self.prompt_logprobs))

    def on_error(self, error: BaseException) -> None:
        self.deliver("error", error)

    def deliver(self, kind: str, value: object) -> None:
        raise NotImplementedError

    def is_cancelled(self) -> bool:
        raise NotImplementedError


class LoopListener(Listener):
    """Events into a queue of the event loop that awaits them; safe to feed from any thread."""

    def __init__(self, request: GenerationRequest) -> None:
        super().__init__(request)
        self._loop = asyncio.get_running_loop()
        self.events: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._cancelled = threading.Event()

    def deliver(self, kind: str, value: object) -> None:
        self._loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()


class EventSource:
    """`events` and `complete` over a way to submit and cancel a request (in-thread or another process)."""

    def _submit(self, listener: LoopListener) -> None:
        raise NotImplementedError

    def _cancel(self, listener: LoopListener) -> None:
        raise NotImplementedError

    async def stats(self) -> EngineStats:
        raise NotImplementedError

    def check_health(self) -> None:
        """Raises when the engine can no longer decode."""
        raise NotImplementedError

    async def events(self, request: GenerationRequest) -> AsyncIterator[tuple[str, object]]:
        """("delta", text)... then ("done", Finished). Raises what the decoding raised; cancels on exit."""
        listener = LoopListener(request)
        self._submit(listener)
        finished = False
        try:
            while not finished:
                kind, value = await listener.events.get()
                if kind == "error":
                    finished = True
                    raise value  # type: ignore[misc]
                finished = kind == "done"
                yield kind, value
        finally:
            if not finished:
                self._cancel(listener)

    async def complete(self, request: GenerationRequest) -> Finished:
        async for kind, value in self.events(request):
            if kind == "done":
                return value  # type: ignore[return-value]
        raise RuntimeError("the decoding ended without a result")  # unreachable: events() ends on "done"


class Engine(EventSource):
    """The decoding loop in a thread of this process; see the module docstring."""

    def __init__(self, registry: ModelRegistry, config: ServeConfig) -> None:
        self._registry = registry
        self._config = config
        self._batchers: dict[str, ContinuousBatcher] = {}
        self._incoming: deque[Listener] = deque()
        self._wake = threading.Condition()
        self._stats = EngineStats()
        self._thread = threading.Thread(target=self._decode_forever, name="taiyi-decode", daemon=True)
        self._thread.start()

    def submit(self, listener: Listener) -> None:
        """Queue a request for the decoding thread (from any thread)."""
        with self._wake:
            self._incoming.append(listener)
            self._wake.notify()

    def _submit(self, listener: LoopListener) -> None:
        self.submit(listener)

    def _cancel(self, listener: LoopListener) -> None:
        listener.cancel()

    def snapshot(self) -> EngineStats:
        batchers = list(self._batchers.values())
        return EngineStats(
            steps=sum(batcher.stats.steps for batcher in batchers),
            requests=self._stats.requests,
            largest_batch=max((batcher.stats.largest_batch for batcher in batchers), default=0),
            loaded=self._registry.loaded_ids(),
        )

    async def stats(self) -> EngineStats:
        return self.snapshot()

    def check_health(self) -> None:
        if not self._thread.is_alive():
            raise EngineUnavailable("the decoding thread has stopped", self._config.retry_after_s)

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
                listener = self._incoming.popleft()
            if listener.is_cancelled():
                listener.on_error(asyncio.CancelledError())
                continue
            try:
                self._admit(listener)
            except Exception as error:
                log.exception("accepting a request for %s failed", listener.request.model_id)
                listener.on_error(error)

    def _admit(self, listener: Listener) -> None:
        request = listener.request
        with self._registry.activate(request.model_id) as loaded:
            if request.prompt_logprobs_top is not None:
                listener.prompt_logprobs = prompt_logprobs(
                    loaded, request.prompt_ids, request.prompt_logprobs_top
                )
            batcher = self._batchers.get(request.model_id)
            if batcher is None:
                config = self._config
                batcher = ContinuousBatcher.for_model(
                    loaded,
                    config.max_batch_size,
                    config.max_step_tokens,
                    config.scheduling,
                    cuda_graphs=config.cuda_graphs,
                )
                self._batchers[request.model_id] = batcher
        batcher.submit(request.prompt_ids, request.params, listener)
        self._stats.requests += 1

    def _step(self, model_id: str, batcher: ContinuousBatcher) -> None:
        try:
            with self._registry.activate(model_id) as loaded:
                batcher.step(loaded)
        except Exception as error:
            log.exception("a decoding step for %s failed; its requests fail with it", model_id)
            for sequence in batcher.abandon():
                if isinstance(sequence.listener, Listener):
                    sequence.listener.on_error(error)


@dataclass(frozen=True)
class EngineSpec:
    """What the engine process needs to load the models and run the loop (picklable)."""

    source: ModelSource
    device: str
    torch_threads: int
    config: dict[str, Any]  # the `serve` section, as JSON


class EngineProcess(EventSource):
    """The decoding loop in a child process (spawned: never forked from a process with Ray's threads),
    driven over a pipe; see the module docstring. Raises at construction if the models fail to load."""

    def __init__(self, spec: EngineSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_engine_process_main, args=(child_end, spec), name="taiyi-engine", daemon=True
        )
        self._process.start()
        child_end.close()
        self._send_lock = threading.Lock()
        self._pending: dict[int, Listener] = {}
        self._queries: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[EngineStats]]] = {}
        self._ids = itertools.count()
        self._failure: str | None = None
        self._retry_after_s = ServeConfig.model_validate(spec.config).retry_after_s
        kind, _, value = self._receive_first()
        if kind != "ready":
            raise RuntimeError(f"the engine process could not load {spec.source.model_dir}:\n{value}")
        log.info("engine process %d serves %s", self._process.pid, spec.source.model_dir)
        self._receiver = threading.Thread(
            target=self._receive_forever, name="taiyi-engine-events", daemon=True
        )
        self._receiver.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _receive_first(self) -> tuple[str, int, object]:
        try:
            return self._connection.recv()  # type: ignore[no-any-return]
        except EOFError:
            self._process.join(5)
            raise RuntimeError(
                f"the engine process exited while loading (exit code {self._process.exitcode})"
            ) from None

    def _send(self, message: tuple[str, int, object]) -> None:
        with self._send_lock:
            self._connection.send(message)

    def _submit(self, listener: LoopListener) -> None:
        self.check_health()
        request_id = next(self._ids)
        self._pending[request_id] = listener
        listener.request_id = request_id
        self._send(("submit", request_id, listener.request))

    def _cancel(self, listener: LoopListener) -> None:
        if listener.request_id in self._pending and self._failure is None:
            self._send(("cancel", listener.request_id, None))

    async def stats(self) -> EngineStats:
        self.check_health()
        query_id = next(self._ids)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[EngineStats] = loop.create_future()
        self._queries[query_id] = (loop, answer)
        self._send(("stats", query_id, None))
        return await answer

    def check_health(self) -> None:
        """Raises once the engine process is gone (Serve then replaces the replica)."""
        if self._failure is not None:
            raise EngineUnavailable(self._failure, self._retry_after_s)

    def _receive_forever(self) -> None:
        while True:
            try:
                kind, key, value = self._connection.recv()
            except (EOFError, OSError):
                self._process.join(5)
                if self._failure is None:  # not closed on purpose
                    self._fail_everything(f"the engine process exited (exit code {self._process.exitcode})")
                self._connection.close()
                return
            if kind == "stats":
                loop, answer = self._queries.pop(key)
                loop.call_soon_threadsafe(answer.set_result, value)
                continue
            listener = self._pending.get(key) if kind == "delta" else self._pending.pop(key, None)
            if listener is not None:
                listener.deliver(kind, value)

    def _fail_everything(self, reason: str) -> None:
        if self._pending or "closed" not in reason:
            log.error("%s; failing %d requests in flight", reason, len(self._pending))
        self._failure = reason
        for listener in list(self._pending.values()):
            listener.deliver("error", EngineUnavailable(reason, self._retry_after_s))
        self._pending.clear()
        for loop, answer in self._queries.values():
            loop.call_soon_threadsafe(answer.set_exception, EngineUnavailable(reason, self._retry_after_s))

    def close(self) -> None:
        """Ends the engine process: asks it to stop (a pipe closed while this process's receiver thread
        reads it does not reach the child as EOF), waits, and kills it if it lingers."""
        if self._failure is None:
            self._fail_everything("the engine was closed")
            self._send(("stop", -1, None))
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


class PipeListener(Listener):
    """In the engine process: a request's events back to the replica over the pipe."""

    def __init__(self, request_id: int, request: GenerationRequest, channel: _Channel) -> None:
        super().__init__(request)
        self._id = request_id
        self._channel = channel

    def deliver(self, kind: str, value: object) -> None:
        if kind != "delta":
            self._channel.active.discard(self._id)
            self._channel.cancelled.discard(self._id)
        self._channel.send((kind, self._id, _picklable(value) if kind == "error" else value))

    def is_cancelled(self) -> bool:
        return self._id in self._channel.cancelled


@dataclass
class _Channel:
    connection: Connection
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: set[int] = field(default_factory=set)  # submitted, not yet done
    cancelled: set[int] = field(default_factory=set)

    def send(self, message: tuple[str, int, object]) -> None:
        with self.lock:
            self.connection.send(message)


def _picklable(error: object) -> BaseException:
    """`error` if it survives pickling, else a RuntimeError that says what it was."""
    import pickle

    try:
        pickle.dumps(error)
        return error  # type: ignore[return-value]
    except (pickle.PicklingError, TypeError, AttributeError):
        return RuntimeError(f"{type(error).__name__}: {error}")


def _engine_process_main(connection: Connection, spec: EngineSpec) -> None:
    """The engine process: load the models, then take requests until the replica closes the pipe."""
    import torch

    torch.set_num_threads(spec.torch_threads)
    channel = _Channel(connection)
    try:
        registry = ModelRegistry(spec.source, spec.device)
        engine = Engine(registry, ServeConfig.model_validate(spec.config))
    except BaseException:  # noqa: BLE001 - whatever stops the load is the replica's startup error
        channel.send(("failed", -1, traceback.format_exc()))
        return
    channel.send(("ready", -1, None))
    while True:
        try:
            kind, key, value = connection.recv()
        except (EOFError, OSError):
            return  # the replica is gone (its end of the pipe closed with it); the daemon threads end too
        if kind == "stop":
            return
        if kind == "submit":
            channel.active.add(key)
            engine.submit(PipeListener(key, value, channel))
        elif kind == "cancel" and key in channel.active:
            channel.cancelled.add(key)
        elif kind == "stats":
            channel.send(("stats", key, engine.snapshot()))
