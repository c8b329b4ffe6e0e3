"""Causal LMs: a random-weight Qwen2 from a shape (demo, tests), any Hugging Face model directory, and an
exported model directory loaded for generation (serving, evaluation) with its chat format.

An export holds a merged model, or an adapter whose `adapter_config.json` names its base. The chat
format comes from `taiyi_export.json`; a directory without one (a model from elsewhere) is taken as
ChatML when its EOS is <|im_end|>, else Taiyi's plain format.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast, Qwen2Config

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.chat_format import IM_END, ChatFormat, get_chat_format
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer

log = logging.getLogger(__name__)

EXPORT_INFO = "taiyi_export.json"
"""What an export says of itself (model name, chat format, source run), next to config.json."""

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def padded_vocab_size(tokenizer_length: int, multiple: int = 64) -> int:
    """Embedding rows for a tokenizer: its length rounded up (tensor-core friendly, as Qwen does)."""
    return ((tokenizer_length + multiple - 1) // multiple) * multiple


def build_tiny_qwen2(
    shape: TinyQwen2Shape,
    vocab_size: int,
    seed: int,
    eos_token_id: int,
    pad_token_id: int,
    attn_implementation: str = "sdpa",
) -> PreTrainedModel:
    """A random-weight Qwen2ForCausalLM (fp32, CPU), deterministic in `seed`."""
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=shape.tie_word_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        use_cache=True,
    )
    config._attn_implementation = attn_implementation
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    finally:
        torch.random.set_rng_state(generator_state)
    return model


def load_causal_lm(
    directory: str | Path, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa"
) -> PreTrainedModel:
    """Load a Hugging Face causal LM directory (never from a hub: HF_HUB_OFFLINE is set for every job)."""
    directory = Path(directory)
    if not (directory / "config.json").exists():
        raise FileNotFoundError(f"{directory}: no config.json; expected a Hugging Face model directory")
    return AutoModelForCausalLM.from_pretrained(
        str(directory), dtype=dtype, attn_implementation=attn_implementation
    )


def unwrapped(model: torch.nn.Module) -> PreTrainedModel:
    """The transformers model itself: a peft model (LoRA / QLoRA) wraps it, a plain model is it."""
    get_base_model = getattr(model, "get_base_model", None)
    return cast(PreTrainedModel, get_base_model() if callable(get_base_model) else model)


def matmul_parameters(model: torch.nn.Module) -> int:
    """N of the PaLM FLOP count: parameters of every matmul (all Linear layers incl. the LM head)."""
    base = unwrapped(model)
    return sum(
        module.weight.numel()
        for name, module in base.named_modules()
        if isinstance(module, torch.nn.Linear) and "lora_" not in name
    )


@dataclass
class LoadedModel:
    model: Any  # a transformers model, or a peft model wrapping one (adapters served by name)
    tokenizer: PreTrainedTokenizerFast
    chat_format: ChatFormat
    name: str  # the export's model_name (taiyi_export.json), else the directory name


def export_info(directory: Path) -> dict[str, Any]:
    """`taiyi_export.json` of an export (chat format, model name, ...); {} for a model from elsewhere."""
    info = directory / EXPORT_INFO
    return dict(json.loads(info.read_text())) if info.exists() else {}


def chat_format_of(directory: Path, tokenizer: PreTrainedTokenizerFast) -> ChatFormat:
    name = export_info(directory).get("chat_format")
    return get_chat_format(name or ("chatml" if tokenizer.eos_token == IM_END else "taiyi"))


@dataclass(frozen=True)
class ModelInterface:
    """What a client of an export needs without its weights: the tokenizer configured with the chat format,
    the model's name and its context length (an HTTP ingress tokenises and checks requests with it)."""

    tokenizer: PreTrainedTokenizerFast
    chat_format: ChatFormat
    name: str  # the export's model_name (taiyi_export.json), else the directory name
    context_length: int  # the architecture's max_position_embeddings (2048 when it has none)


def load_interface(directory: str | Path) -> ModelInterface:
    """The export's `ModelInterface`; reads the tokenizer and configs only."""
    directory = Path(directory)
    tokenizer = load_tokenizer(directory)
    chat_format = chat_format_of(directory, tokenizer)
    configure_tokenizer(tokenizer, chat_format)
    base = _adapter_base(directory)
    architecture = json.loads((Path(base or directory) / "config.json").read_text())
    return ModelInterface(
        tokenizer,
        chat_format,
        export_info(directory).get("model_name") or directory.name,
        int(architecture.get("max_position_embeddings") or 0) or 2048,
    )


def _adapter_base(directory: Path) -> str | None:
    """The base model an adapter-only export names (None for a model with weights of its own)."""
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists() and not (directory / "config.json").exists():
        return str(json.loads(adapter_config.read_text())["base_model_name_or_path"])
    return None


def prefer_decoding_attention() -> None:
    """Keep SDPA off cuDNN's backend in a process that decodes: cuDNN plans a kernel per shape, and a
    decoding step's attention changes shape at every step (a batch-1 step measured ~19 ms on an H200 with
    it). Flash / memory-efficient attention serve those calls without re-planning."""
    torch.backends.cuda.enable_cudnn_sdp(False)


def load_for_inference(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> LoadedModel:
    """Model (eval mode, on `device`) + tokenizer configured with the model's chat format.

    On CUDA it also turns cuDNN's attention off for this process (see `prefer_decoding_attention`)."""
    directory = Path(directory)
    on_cuda = str(device).startswith("cuda")
    dtype = dtype or (torch.bfloat16 if on_cuda else torch.float32)
    if on_cuda:
        prefer_decoding_attention()
    interface = load_interface(directory)
    base = _adapter_base(directory)
    if base is not None:
        from peft import PeftModel

        model: Any = PeftModel.from_pretrained(load_causal_lm(base, dtype), str(directory))
    else:
        model = load_causal_lm(directory, dtype)
    model.to(device)
    model.eval()
    return LoadedModel(model, interface.tokenizer, interface.chat_format, interface.name)
