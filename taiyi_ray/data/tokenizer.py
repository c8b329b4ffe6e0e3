"""Tokenizers: the real Qwen2 tokenizer from a directory, or a small byte-level BPE trained on the corpus.

The shared Qwen2 tokenizer ships only tokenizer.json (no tokenizer_config, no chat template), so the
special tokens and the chat template are always set here, from the chat format: EOS is the format's
answer-ending token, PAD is <|endoftext|>. A trained demo tokenizer uses Qwen2's own pre-tokenizer
(the same split regex + byte-level) so that it segments text the way the real one does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from taiyi_ray.data.chat_format import ENDOFTEXT, SPECIAL_TOKENS, ChatFormat

QWEN2_SPLIT_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a Qwen2-style byte-level BPE on `texts` (deterministic for the same texts and size)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory: a saved HF tokenizer, or a bare tokenizer.json (the shared Qwen2 one)."""
    directory = Path(directory)
    if (directory / "tokenizer_config.json").exists():
        loaded: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(str(directory))
        if not isinstance(loaded, PreTrainedTokenizerFast):
            raise ValueError(
                f"{directory}: a fast tokenizer (tokenizer.json) is needed, got {type(loaded).__name__}"
            )
        return loaded
    tokenizer_file = directory / "tokenizer.json"
    if not tokenizer_file.exists():
        raise FileNotFoundError(
            f"{directory}: no tokenizer.json or tokenizer_config.json; expected a tokenizer directory"
        )
    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file))


def configure_tokenizer(
    tokenizer: PreTrainedTokenizerFast, chat_format: ChatFormat
) -> PreTrainedTokenizerFast:
    """Set specials and chat template from the chat format (what training, serving and eval share)."""
    missing = [
        token
        for token in SPECIAL_TOKENS
        if tokenizer.convert_tokens_to_ids(token) is None
        or tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(token)) != token
    ]
    if missing:
        raise ValueError(
            f"tokenizer lacks the special tokens {missing}; expected Qwen2's {list(SPECIAL_TOKENS)}"
        )
    tokenizer.add_special_tokens(
        {
            "eos_token": chat_format.end_token,
            "pad_token": ENDOFTEXT,
            "additional_special_tokens": list(SPECIAL_TOKENS),
        }
    )
    tokenizer.chat_template = chat_format.chat_template
    tokenizer.padding_side = "left"  # generation pads on the left; training builds its own rows
    tokenizer.model_max_length = 1 << 30
    return tokenizer


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerFast) -> str:
    """sha256 of the tokenizer's vocabulary, merges, normalisation and specials (not file layout)."""
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    payload = json.dumps(
        {
            "backend": state,
            "eos": tokenizer.eos_token,
            "pad": tokenizer.pad_token,
            "template": tokenizer.chat_template,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> str:
    """Save in HF layout (tokenizer.json + tokenizer_config.json with the chat template); returns the dir."""
    os.makedirs(directory, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    return str(directory)
