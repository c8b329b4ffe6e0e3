"""The result of a training stage: what it trained (LoRA adapter or full weights) on top of which base.

`{run_dir}/model/taiyi_model.json` describes it, with paths relative to that directory:
  {"method": "lora", "base_model": "<dir or URI>", "adapter": "adapter", "weights": null,
   "tokenizer": "tokenizer", "chat_format": "taiyi", "stage": "stage1"}
Stage 2 continues from it, export turns it into a plain Hugging Face model directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
