"""What a trained model leaves on disk: the stage result that stage 2 and export read, and the files that make an export directory complete.

What makes a Hugging Face model directory a taiyi-ray export: the tokenizer with the chat template
and end token used in training, a generation config that stops on that end token, and
`taiyi_export.json` naming the chat format — the one place these are written (export job, tests,
benchmarks) so serving and evaluation always find them the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import GenerationConfig, PreTrainedTokenizerFast

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.chat_format import ENDOFTEXT, ChatFormat, get_chat_format
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer
from taiyi_ray.model.factory import EXPORT_INFO, build_tiny_qwen2, padded_vocab_size
from taiyi_ray.storage import Storage, join

RESULT_FILE = "taiyi_model.json"


@dataclass(frozen=True)
class TrainedModel:
    method: str
    base_model: str
    chat_format: str
    stage: str
    adapter: str | None = "adapter"
    weights: str | None = None
    tokenizer: str = "tokenizer"


def model_dir(run_dir: str) -> str:
    return join(run_dir, "model")


def write_result(storage: Storage, directory: str, result: TrainedModel) -> None:
    storage.write_json(join(directory, RESULT_FILE), asdict(result))


def read_result(storage: Storage, run_dir: str) -> tuple[TrainedModel, str]:
    """(description, model directory) of a stage run dir (or of its model/ directory)."""
    for directory in (model_dir(run_dir), run_dir):
        location = join(directory, RESULT_FILE)
        if storage.exists(location):
            return TrainedModel(**storage.read_json(location)), directory
    raise FileNotFoundError(
        f"{run_dir}: no {RESULT_FILE} in it or in its model/ directory; expected the run dir of a finished stage"
    )


def write_export_files(
    directory: str | Path, tokenizer: PreTrainedTokenizerFast, chat_format: ChatFormat, info: dict[str, Any]
) -> None:
    """Tokenizer, generation config and export info next to already-saved weights in `directory`."""
    directory = Path(directory)
    tokenizer.save_pretrained(str(directory))
    GenerationConfig(
        eos_token_id=tokenizer.convert_tokens_to_ids(chat_format.end_token),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        do_sample=False,
    ).save_pretrained(str(directory))
    payload = {"chat_format": chat_format.name, "end_token": chat_format.end_token, **info}
    (directory / EXPORT_INFO).write_text(json.dumps(payload, indent=2))


def write_random_export(
    directory: str | Path,
    tokenizer_dir: str | Path,
    shape: TinyQwen2Shape,
    chat_format: str = "taiyi",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """An export of a random-weight Qwen2 of `shape` (no training): for serving and evaluation tests
    and benchmarks, which need a real model directory but not a trained one."""
    directory = Path(directory)
    fmt = get_chat_format(chat_format)
    tokenizer = configure_tokenizer(load_tokenizer(tokenizer_dir), fmt)
    vocab = shape.vocab_size or padded_vocab_size(len(tokenizer))
    model: Any = build_tiny_qwen2(
        shape, vocab, seed, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.to(dtype).save_pretrained(str(directory), safe_serialization=True)
    write_export_files(
        directory, tokenizer, fmt, {"model_name": f"random-qwen2-{shape.hidden_size}", "random": True}
    )
    return directory
