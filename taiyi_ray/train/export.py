"""Export a trained stage as a plain Hugging Face model directory: merged weights (or the adapter
only), the tokenizer with the chat template and end token used in training, a generation config whose
EOS is that end token, and a model card naming the base model, recipe, data and licences."""

from __future__ import annotations

import json
import logging
import os
import tempfile

from peft import PeftModel

from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer
from taiyi_ray.model.convert_weights import convert_checkpoint, export_dtype
from taiyi_ray.model.factory import load_causal_lm
from taiyi_ray.model.result import TrainedModel, read_result, write_export_files
from taiyi_ray.storage import Storage, join
from taiyi_ray.train.export_task import ExportedModel
from taiyi_ray.train.outputs import SUMMARY, StageSummary, read_stage_summary

log = logging.getLogger(__name__)


def export_model(
    storage: Storage,
    from_run: str,
    output: str,
    merge: bool,
    model_name: str,
    licence: str,
    dtype: str = "auto",
) -> ExportedModel:
    """Write the export of the stage run `from_run` to `output` (local path or URI), its weights in
    `dtype` (`auto`: the base model's own, see taiyi_ray.model.convert_weights)."""
    result, directory = read_result(storage, from_run)
    chat_format = get_chat_format(result.chat_format)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = configure_tokenizer(
            load_tokenizer(storage.download_dir(join(directory, result.tokenizer), f"{scratch}/tokenizer")),
            chat_format,
        )
        local = f"{scratch}/export"
        target = export_dtype(dtype, storage, result.base_model)
        if result.method == "full":
            weights_dir = storage.download_dir(join(directory, str(result.weights)), f"{scratch}/weights")
            convert_checkpoint(weights_dir, local, target)  # never the whole float32 model in memory
        else:
            base_dir = storage.download_dir(result.base_model, f"{scratch}/base")
            adapter_dir = storage.download_dir(join(directory, str(result.adapter)), f"{scratch}/adapter")
            base = load_causal_lm(base_dir, target)
            if merge:
                model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
                model.save_pretrained(local, safe_serialization=True)
            else:
                PeftModel.from_pretrained(base, adapter_dir).save_pretrained(local, safe_serialization=True)
                _point_adapter_at_base(local, result.base_model)
        info = {
            "model_name": model_name,
            "method": result.method,
            "merged": merge or result.method == "full",
            "base_model": result.base_model,
            "from_run": from_run,
            "dtype": str(target).removeprefix("torch."),
        }
        write_export_files(local, tokenizer, chat_format, info)
        with open(os.path.join(local, "README.md"), "w") as handle:
            handle.write(model_card(result, storage, from_run, model_name, licence, merge))
        storage.upload_dir(local, output)
    return ExportedModel(chat_format=chat_format.name, end_token=chat_format.end_token, **info)


def _point_adapter_at_base(local: str, base_model: str) -> None:
    """An adapter-only export records where its base lives (peft reads base_model_name_or_path)."""
    path = os.path.join(local, "adapter_config.json")
    with open(path) as handle:
        config = json.load(handle)
    config["base_model_name_or_path"] = base_model
    with open(path, "w") as handle:
        json.dump(config, handle, indent=2)


def _stage_history(storage: Storage, from_run: str) -> list[StageSummary]:
    """Summaries of this stage and the stages it continued from (newest first)."""
    history: list[StageSummary] = []
    run: str | None = from_run
    while run and storage.exists(join(run, SUMMARY)):
        history.append(read_stage_summary(storage, run))
        run = history[-1].init_from
    return history


def _loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def model_card(
    result: TrainedModel, storage: Storage, from_run: str, model_name: str, licence: str, merge: bool
) -> str:
    history = _stage_history(storage, from_run)
    rows = "\n".join(
        f"| {item.stage} | {item.method} | ZeRO-{item.zero_stage} | {item.steps} | {item.samples} | "
        f"{item.epochs} | {_loss(item.final_loss)} | {', '.join(sorted(item.realised_mix))} |"
        for item in reversed(history)
    )
    return f"""---
license: other
license_name: research-only-mixed
tags: [biomedical, bilingual, taiyi-ray]
---
# {model_name}

A bilingual (English/Chinese) biomedical model fine-tuned with taiyi-ray following the Taiyi recipe
(two supervised stages: biomedical task data, then task data plus QA and dialogue).

- Base model: `{result.base_model}`
- Method: {result.method} ({"merged into the base weights" if merge or result.method == "full" else "adapter only; load it on top of the base model"})
- Chat format: `{result.chat_format}` (chat_template.jinja; answers end with the tokenizer's EOS, which generation_config.json stops on)

## Training
| stage | method | ZeRO | steps | samples | epochs | final loss | datasets |
|---|---|---|---|---|---|---|---|
{rows}

## Data and licences
{licence}

Several of the biomedical corpora used by the Taiyi recipe carry their own terms: the BioCreative
corpora (BC5CDR, CHEMDNER, LitCovid) and CBLUE (CMeEE, CMeIE, KUAKE-QIC) are for research use, HoC is
GPL-3.0, PubMedQA and MedQA are MIT, the BIO conversions of BC5CDR/NCBI are CC BY 4.0. Check the terms
of every dataset in your catalogue before using or distributing this model.

## Intended use
Research on biomedical text mining and question answering. Not for clinical decision making.
"""
