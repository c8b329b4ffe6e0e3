"""The models one replica serves: a base model directory and LoRA adapters on top of it, by model id.

Model ids: the base is `serve.model_id` (default: the export's `model_name` from `taiyi_export.json`,
else the directory name); each adapter of `serve.adapters`
is `{base}:{name}`. An export that is itself adapter-only keeps its own adapter on for the base id.

Two halves, in two processes of a replica (see `taiyi_ray.serve.engine`): `ModelCatalog` is what the HTTP
side needs — ids, tokenizer, chat format, context length, end token — without any weights;
`ModelRegistry` adds the weights, in the engine process: the base loads at start, an adapter the first
time a request names it (PEFT's multi-adapter model: one copy of the base weights, one small set of LoRA
weights per adapter, switched per step). `activate` switches adapters on the shared model, so only the
one decoding thread may use it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from taiyi_ray.config.serving import ServeConfig
from taiyi_ray.data.chat_format import ChatFormat
from taiyi_ray.model.factory import LoadedModel, load_for_inference, load_interface
from taiyi_ray.model.generation import end_token_id
from taiyi_ray.model.result import EXPORT_INFO
from taiyi_ray.serve.errors import APIError

log = logging.getLogger(__name__)

ADAPTER_SEPARATOR = ":"


@dataclass(frozen=True)
class ModelSource:
    """Where a replica's models come from (the `serve` section's model, model_id, adapters and context
    cap); picklable, for the engine process."""

    model_dir: str
    model_id: str | None = None
    adapters: Mapping[str, str] = field(default_factory=dict)
    max_context_tokens: int | None = None

    @classmethod
    def of(cls, config: ServeConfig) -> ModelSource:
        if config.model is None:
            raise ValueError("serve.model is not set; expected a Hugging Face model directory (--model DIR)")
        return cls(str(config.model), config.model_id, dict(config.adapters), config.max_context_tokens)


class ModelCatalog:
    """The served model ids and what requests are tokenised and checked with; no weights."""

    def __init__(self, source: ModelSource) -> None:
        interface = load_interface(source.model_dir)
        self.base_id = source.model_id or interface.name
        self.model_digest = model_digest(Path(source.model_dir))
        self._adapter_dirs = dict(source.adapters)
        self.chat_format: ChatFormat = interface.chat_format
        # a Rust tokenizer must not be used from two threads at once: the event loop's, and a copy for
        # the worker thread that compiles output grammars
        self.tokenizer: PreTrainedTokenizerFast = copy.deepcopy(interface.tokenizer)
        self.grammar_tokenizer: PreTrainedTokenizerFast = copy.deepcopy(interface.tokenizer)
        self.end_token_id = end_token_id(interface)
        limit = interface.context_length
        self.context_length = min(limit, source.max_context_tokens or limit)

    def ids(self) -> list[str]:
        return [self.base_id, *(self.adapter_id(name) for name in sorted(self._adapter_dirs))]

    def adapter_id(self, name: str) -> str:
        return f"{self.base_id}{ADAPTER_SEPARATOR}{name}"

    def resolve(self, model: str | None) -> str:
        """The model id a request names (None: the base), or a 404 naming the served ids."""
        if model is None or model in self.ids():
            return model or self.base_id
        raise APIError(
            404,
            f"unknown model {model!r}; served models: {self.ids()} (adapters are '{self.base_id}:NAME')",
            param="model",
            code="model_not_found",
        )


class ModelRegistry(ModelCatalog):
    """The catalog plus the weights: base model on `device`, adapters loaded on first use."""

    def __init__(self, source: ModelSource, device: str = "cpu") -> None:
        self._loaded = load_for_inference(source.model_dir, device)
        super().__init__(source)
        self._adapters_loaded: set[str] = set()
        self._own_adapter = "default" if _is_peft(self._loaded.model) else None
        log.info(
            "serving %s from %s on %s (context %d tokens, adapters: %s)",
            self.base_id,
            source.model_dir,
            device,
            self.context_length,
            sorted(self._adapter_dirs) or "none",
        )

    def loaded_ids(self) -> list[str]:
        return [self.base_id, *(self.adapter_id(name) for name in sorted(self._adapters_loaded))]

    @contextmanager
    def activate(self, model_id: str) -> Iterator[LoadedModel]:
        """The loaded model with `model_id`'s adapter switched on (decoding thread only)."""
        adapter = model_id.split(ADAPTER_SEPARATOR, 1)[1] if model_id != self.base_id else None
        if adapter is not None:
            self._ensure_adapter(adapter)
        model = self._loaded.model
        wanted = adapter or self._own_adapter
        if wanted is None and _is_peft(model):
            with model.disable_adapter():
                yield self._loaded
            return
        if wanted is not None:
            model.set_adapter(wanted)
        yield self._loaded

    def _ensure_adapter(self, name: str) -> None:
        if name in self._adapters_loaded:
            return
        from peft import PeftModel

        path = self._adapter_dirs[name]
        model = self._loaded.model
        log.info("loading adapter %s from %s", name, path)
        if _is_peft(model):
            model.load_adapter(path, adapter_name=name)
        else:
            model = PeftModel.from_pretrained(model, path, adapter_name=name)
            self._loaded = LoadedModel(
                model, self._loaded.tokenizer, self._loaded.chat_format, self._loaded.name
            )
        model.eval()
        self._adapters_loaded.add(name)


def model_digest(directory: Path) -> str:
    """SHA-256 of what identifies a model directory without reading its weights: the export info (model
    name, source run, dtype...), the architecture config and an adapter's config."""
    digest = hashlib.sha256()
    for name in (EXPORT_INFO, "config.json", "adapter_config.json"):
        path = directory / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    return digest.hexdigest()


def _is_peft(model: object) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)
