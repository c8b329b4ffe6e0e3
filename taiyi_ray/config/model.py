"""The `model` section: which base model and tokenizer every stage uses, and the chat format; and the `export` section.

The `export` section: turn a training run into a Hugging Face model directory.
"""

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
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] = Field(
        "sdpa",
        description="Attention backend. Training flattens every micro-batch into one sequence with "
        "restarting position ids, so each backend keeps samples apart: flash_attention_2 runs varlen "
        "(GPU and the flash-attn package), sdpa/eager/flex_attention a block-diagonal causal mask. "
        "flex_attention trains on GPU only (torch has no flex-attention backward on CPU).",
    )


class ExportConfig(StrictModel):
    """`from_run`: a stage run dir (None: given by the pipeline or --set export.from_run=...).

    `merge` folds LoRA weights into the base (a plain model any runtime loads); False writes the adapter
    only, next to a reference to its base. `dtype` of the written weights: `auto` is the base model's own
    (`dtype` / `torch_dtype` in its config.json, else its safetensors dtype), so a bf16 Qwen2.5 base
    exports bf16, not a float32 copy twice its size; training on CPU in fp32 does not change it.

    The export runs as a Ray task that reserves `memory_gib` of a node's memory (None: derived from the
    size of the weights in the export dtype, 1.5x that plus 2 GiB for the runtime; measured peaks are
    1.03-1.09x, benchmarks/export_memory.py), on a worker, never in the job's driver on the head. A budget
    no node of the cluster (nor of its autoscaling groups) can hold, or one below 1.1x the weights plus
    1 GiB, is an error before anything is loaded.
    """

    from_run: Location | None = None
    merge: bool = True
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    memory_gib: float | None = Field(None, gt=0)
    model_name: str = Field("taiyi-ray-model", min_length=1)
    licence: str = Field(
        "research use only: trained on biomedical corpora with research-only and GPL terms (see the model card)"
    )
