"""Generation with Ray Data: `map_batches` over an actor pool, each actor holding one model replica.

One pipeline carries the prompts of every pending set (the model loads once per actor, not per set),
sorted by set and then by length. Each block is one batch, decoded by the actor's `ContinuousBatcher`
(the engine the Serve replicas use, so offline and endpoint predictions are the same tokens): a
sequence that ends leaves the batch at once and the next prompt of the block joins. Each actor returns,
with every output, its share of the seconds its batch took (divided again by the number of actors, which run at once), so a set's generation speed is
measured apart from the pipeline's start-up and the model's loading.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from taiyi_ray.config.evaluation import EvalConfig, GenerationConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.eval.generation_types import OnResult, RawOutput, Request, generation_settings

log = logging.getLogger(__name__)


class GenerationActor:
    """A Ray Data callable class: loads the model once, then generates a batch per call."""

    def __init__(
        self, model: str, generation: GenerationConfig, storage: StorageConfig, device: str, batch_size: int
    ) -> None:
        from taiyi_ray.model.engine import ContinuousBatcher
        from taiyi_ray.model.factory import load_for_inference
        from taiyi_ray.storage import Storage

        self.settings = generation_settings(generation)
        self.scratch = tempfile.TemporaryDirectory(prefix="taiyi-eval-model-")
        # Credentials: the StorageConfig's own fields, else the actor's environment (never runtime_env).
        directory = Storage(storage).cached_dir(model, self.scratch.name)  # once per node with cache_dir
        self.loaded = load_for_inference(directory, device=device)
        self.batcher = ContinuousBatcher.for_model(self.loaded, max_sequences=batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        from taiyi_ray.data.schema import Message

        conversations = [
            [Message.model_validate(message) for message in json.loads(str(text))]
            for text in batch["messages"]
        ]
        tokenizer, chat_format = self.loaded.tokenizer, self.loaded.chat_format
        prompt_ids = [
            tokenizer(chat_format.prompt_text(messages), add_special_tokens=False)["input_ids"]
            for messages in conversations
        ]
        started = time.perf_counter()
        generated = self.batcher.generate(self.loaded, prompt_ids, self.settings)
        seconds = time.perf_counter() - started
        return {
            "set_name": batch["set_name"],
            "key": batch["key"],
            "text": np.array([item.text for item in generated], dtype=object),
            "finish_reason": np.array([item.finish_reason for item in generated], dtype=object),
            "prompt_tokens": np.array([item.prompt_tokens for item in generated], dtype=np.int64),
            "output_tokens": np.array([len(item.token_ids) for item in generated], dtype=np.int64),
            "item_s": np.full(len(generated), seconds / max(1, len(generated)), dtype=np.float64),
        }


def generate_with_actors(
    requests: Sequence[Request],
    config: EvalConfig,
    storage: StorageConfig,
    on_result: OnResult,
) -> None:
    """Generate every request through a Ray Data actor pool (Ray must be initialised by the caller)."""
    import ray

    if not requests:
        return
    if config.model is None:
        raise ValueError("eval.model is not set: give an exported model directory (--model DIR)")
    rows = [{"set_name": r.set_name, "key": r.key, "messages": r.messages_json} for r in requests]
    blocks = max(1, math.ceil(len(rows) / config.batch_size))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        GenerationActor,
        fn_constructor_kwargs={
            "model": config.model,
            "generation": config.generation,
            "storage": storage,
            "device": "cuda" if config.gpus_per_actor > 0 else "cpu",
            "batch_size": config.batch_size,
        },
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.num_actors),
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor or None,
    )
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for index in range(len(batch["key"])):
            output = RawOutput(
                text=str(batch["text"][index]),
                finish_reason=str(batch["finish_reason"][index]),
                prompt_tokens=int(batch["prompt_tokens"][index]),
                output_tokens=int(batch["output_tokens"][index]),
            )
            seconds = float(batch["item_s"][index]) / config.num_actors
            on_result(str(batch["set_name"][index]), str(batch["key"][index]), output, seconds)
