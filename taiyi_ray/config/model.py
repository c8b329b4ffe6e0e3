"""The `model` section: which base model and tokenizer every stage uses, and the chat format."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from taiyi_ray.config.base import Location, StrictModel


class TinyQwen2Shape(StrictModel):
    """Shape of the random-weight Qwen2 used by the demo and the tests (vocabulary from the tokenizer)."""

    hidden_size: int = Field(64, ge=8)
    intermediate_size: int = Field(128, ge=8)
    num_hidden_layers: int = Field(2, ge=1)
    num_attention_heads: int = Field(4, ge=1)
    num_key_value_heads: int = Field(2, ge=1)
    max_position_embeddings: int = Field(4096, ge=64)
    tie_word_embeddings: bool = True
    rope_theta: float = 10000.0
    vocab_size: int | None = Field(
        None,
        ge=16,
        description="Embedding rows; None: the tokenizer's length rounded up to a multiple of 64.",
    )

    @model_validator(mode="after")
    def _heads_divide(self) -> TinyQwen2Shape:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} must be a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        return self


class ModelConfig(StrictModel):
    """Base model, tokenizer and chat format; the same for training, export, serving and evaluation.

    - `base`: a Hugging Face model directory (Qwen2/2.5, Llama...). None builds a random-weight Qwen2 of
      shape `tiny` with seed `init_seed` (demo and tests; nothing is downloaded).
    - `tokenizer`: a directory with tokenizer.json. None takes the base model's tokenizer, or, with no
      base either, trains a byte-level BPE of `trained_vocab_size` on the prepared corpus.
    - `chat_format`: `taiyi` (turns separated and ended by <|endoftext|>, as Taiyi trained) or `chatml`.
    """

    base: Location | None = None
    tiny: TinyQwen2Shape = TinyQwen2Shape()
    tokenizer: Location | None = None
    trained_vocab_size: int = Field(2048, ge=300)
    chat_format: Literal["taiyi", "chatml"] = "taiyi"
    init_seed: int = 0
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
