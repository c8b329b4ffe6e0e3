"""The `stage1` / `stage2` sections: one schema for both supervised stages.

Batch maths (one source of truth; the DeepSpeed JSON is generated from it):
global_batch_size = micro_batch_size x gradient_accumulation_steps x num_workers, in rows (a row is one
sample, or one packed sequence of several samples). The loss is the mean over answer tokens of the whole
global batch, so it does not depend on how rows are split into micro-batches or workers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from taiyi_ray.config.base import Location, StrictModel


class LoraConfig(StrictModel):
    """LoRA adapters (peft). Taiyi: r=64, alpha=16, dropout=0.05 on every linear layer but lm_head."""

    r: int = Field(64, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["all-linear"] | list[str] = "all-linear"


class DataSource(StrictModel):
    """One shard set a stage reads: `set` names one prepared by the data section, `uri` any other.

    `weight` is the share of that set's rows drawn per epoch: 1.0 = every row once, 2.0 = twice,
    0.5 = a seeded half (Taiyi's stage 2 re-used all stage-1 data beside the QA and dialogue data).
    """

    set: str | None = None
    uri: Location | None = None
    weight: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        if (self.set is None) == (self.uri is None):
            raise ValueError("give exactly one of `set` (a shard set of the data section) or `uri`")
        return self


class ValidationConfig(StrictModel):
    """Task scores on fixed dev subsets during training (Taiyi watched 200-item dev subsets to pick its recipe).

    Every `every_steps` optimizer steps and at the end of the stage, each set of `catalogue` (an evaluation
    catalogue, the schema of `eval.catalogue`) is scored on `items_per_set` items drawn with the stage's
    `seed`, by greedy generation sharded over the training workers with the evaluation job's prompts,
    template seed, parser and scorer. `max_new_tokens` None: `eval.generation.max_new_tokens`.
    """

    catalogue: Location
    every_steps: int = Field(ge=1)
    items_per_set: int = Field(200, ge=1)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)


class StageConfig(StrictModel):
    """One supervised fine-tuning stage as a Ray Train job running DeepSpeed ZeRO."""

    data: list[DataSource] = Field(min_length=1)
    init_from: Location | None = Field(
        None, description="A run dir whose trained model this stage continues."
    )
    method: Literal["lora", "qlora", "full"] = "lora"
    lora: LoraConfig = LoraConfig()
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps in total.")
    micro_batch_size: int = Field(
        1, ge=1, description="Rows per worker per micro-batch, flattened into one padding-free sequence."
    )
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_tokens_per_micro_batch: int | None = Field(
        None,
        ge=16,
        description="Caps the flattened tokens of one forward pass: a micro-batch over it runs as several "
        "passes of the same step (never fewer rows per step). At least the shards' max_seq_len. With "
        "torch_compile every pass is padded to it (default micro_batch_size x max_seq_len). sdpa and eager "
        "attend through a dense block-diagonal mask over the whole pass (cost grows with its square), so a "
        "cap of a few rows keeps big micro-batches cheap there; flash_attention_2 and flex_attention skip "
        "the masked blocks.",
    )
    learning_rate: float = Field(2e-4, gt=0)
    lr_schedule: Literal["constant_with_warmup", "cosine", "linear"] = "constant_with_warmup"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    min_lr_ratio: float = Field(
        0.0, ge=0, le=1, description="Cosine/linear floor as a fraction of the peak lr."
    )
    weight_decay: float = Field(0.0, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_epsilon: float = 1e-8
    max_grad_norm: float = Field(0.3, ge=0, description="0 disables clipping.")
    zero_stage: Literal[0, 1, 2, 3] = 2
    offload_optimizer: bool = False
    offload_params: bool = False
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU.")
    gradient_checkpointing: bool = False
    torch_compile: bool = Field(
        False,
        description="Compile the model with torch.compile (DeepSpeed engine.compile(), inductor; GPU or "
        "CPU). Every flattened forward pass is then padded to a fixed token count (max_tokens_per_micro_batch, "
        "default micro_batch_size x the shards' max_seq_len) so shapes stay static: one graph, no recompiles.",
    )
    liger_kernel: bool = Field(
        False,
        description="liger-kernel's fused RMSNorm/RoPE/SwiGLU and linear cross-entropy (GPU, needs the "
        "liger-kernel package; on CPU a warning and the plain modules). The fused loss never "
        "materialises the logits: far less memory, room for a bigger micro-batch.",
    )
    checkpoint_every_steps: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1, gt=0)
    resources_per_worker: dict[str, float] = Field(default_factory=dict)
    max_failures: int = Field(2, ge=0)
    seed: int = 0
    shuffle: bool = True
    log_every_steps: int = Field(1, ge=1)
    peak_flops_per_device: float | None = Field(
        None, description="Peak dense bf16 FLOP/s of one accelerator for MFU; None guesses from the GPU name."
    )
    validation: ValidationConfig | None = Field(
        None, description="Task scores on dev subsets during training; None: none (loss only)."
    )

    @model_validator(mode="after")
    def _offload_needs_zero(self) -> StageConfig:
        if self.offload_params and self.zero_stage != 3:
            raise ValueError("offload_params needs zero_stage 3")
        if self.offload_optimizer and self.zero_stage < 1:
            raise ValueError("offload_optimizer needs zero_stage >= 1")
        if self.liger_kernel and self.torch_compile:
            raise ValueError(
                "liger_kernel with torch_compile: torch.compile breaks on liger's fused linear cross-entropy "
                "(measured, ../shared/gpu/README.md); use one of them (compile is the faster alone)"
            )
        if self.method == "qlora" and self.zero_stage == 3:
            raise ValueError(
                "method qlora with zero_stage 3: ZeRO-3 cannot partition the 4-bit base; use zero_stage 2 "
                "(the frozen 4-bit base is replicated, a quarter of its bf16 size)"
            )
        return self

    @property
    def rows_per_step(self) -> int:
        """Rows one worker trains on per optimizer step (micro-batches x accumulation)."""
        return self.micro_batch_size * self.gradient_accumulation_steps

    def global_batch_size(self) -> int:
        """Rows per optimizer step across all workers."""
        return self.rows_per_step * self.num_workers
