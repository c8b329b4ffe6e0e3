"""Load an exported model directory for generation (serving, evaluation), with its chat format.

An export holds a merged model, or an adapter whose `adapter_config.json` names its base. The chat
format comes from `taiyi_export.json`; a directory without one (a model from elsewhere) is taken as
ChatML when its EOS is <|im_end|>, else Taiyi's plain format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from taiyi_ray.data.chat_format import IM_END, ChatFormat, get_chat_format
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer
from taiyi_ray.model.factory import load_causal_lm
from taiyi_ray.model.result import EXPORT_INFO


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


def load_for_inference(
    directory: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> LoadedModel:
    """Model (eval mode, on `device`) + tokenizer configured with the model's chat format."""
    directory = Path(directory)
    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    tokenizer = load_tokenizer(directory)
    chat_format = chat_format_of(directory, tokenizer)
    configure_tokenizer(tokenizer, chat_format)
    adapter_config = directory / "adapter_config.json"
    if adapter_config.exists() and not (directory / "config.json").exists():
        from peft import PeftModel

        base = json.loads(adapter_config.read_text())["base_model_name_or_path"]
        model: Any = PeftModel.from_pretrained(load_causal_lm(base, dtype), str(directory))
    else:
        model = load_causal_lm(directory, dtype)
    model.to(device)
    model.eval()
    return LoadedModel(
        model, tokenizer, chat_format, export_info(directory).get("model_name") or directory.name
    )
