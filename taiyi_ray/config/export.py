"""The `export` section: turn a training run into a Hugging Face model directory."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from taiyi_ray.config.base import Location, StrictModel


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
