"""Driver side of a training stage: resolve the shard sets and the starting point, build the
`TorchTrainer`, run it, and write `summary.json` (DESIGN.md fields) into the run dir."""

from __future__ import annotations

import importlib.util
import json
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from taiyi_ray.config.data import DataConfig
from taiyi_ray.config.jobs import StageJobConfig
from taiyi_ray.config.model import ModelConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.config.train import DataSource, StageConfig
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.plan import DataPlan, DataPosition, SourceFiles, steps_per_epoch, steps_remaining
from taiyi_ray.data.shards import (
    MANIFEST,
    ShardError,
    ShardManifest,
    ShardTokenizer,
    load_manifest,
    resolve_version,
    shard_sets_root,
)
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer, save_tokenizer
from taiyi_ray.model.factory import build_tiny_qwen2, padded_vocab_size
from taiyi_ray.model.result import model_dir, read_result
from taiyi_ray.runtime import init_ray
from taiyi_ray.storage import Storage, StorageAccessError, join
from taiyi_ray.train.checkpoint import fault_step_from_env, latest_complete_checkpoint, read_checkpoint_state
from taiyi_ray.train.optimization import build_deepspeed_config
from taiyi_ray.train.outputs import (
    STOP_FILE,
    StageSummary,
    read_train_state,
    validation_summary,
    write_stage_summary,
)
from taiyi_ray.train.spec import ShardVersion, TrainSpec, Validator

log = logging.getLogger(__name__)


def source_location(source: DataSource, storage_root: str, data: DataConfig) -> str:
    if source.uri is not None:
        return source.uri
    return join(shard_sets_root(storage_root, data), str(source.set))


@dataclass(frozen=True)
class StageSources:
    """What the stage's shard manifests say: the plan's files, the shared tokenizer, the row width."""

    files: list[SourceFiles]
    tokenizer: ShardTokenizer
    max_seq_len: int  # the longest row any of the sets may hold
    versions: tuple[ShardVersion, ...] = ()


def resolve_sources(
    stage: StageConfig,
    storage_root: str,
    data: DataConfig,
    storage: Storage,
    pinned: PinnedShards | None = None,
) -> StageSources:
    """Manifests of the stage's shard sets -> plan sources; all must share one tokenizer.

    Without `pinned`, each set's newest complete version; with it (a resumed run), the versions its
    checkpoint trained on, which must still be there unchanged."""
    if pinned is not None and len(pinned.versions) != len(stage.data):
        raise ShardError(
            f"{pinned.run_dir}: its checkpoint trained on {len(pinned.versions)} shard sets, the config's "
            f"stage data lists {len(stage.data)}; resume with the data sources the run started with"
        )
    manifests = []
    for index, source in enumerate(stage.data):
        if pinned is None:
            manifests.append(
                load_manifest(storage, resolve_version(storage, source_location(source, storage_root, data)))
            )
        else:
            manifests.append(pinned.load(storage, index))
    tokenizers = {manifest.version_dir: manifest.tokenizer for manifest in manifests}
    if len({tokenizer.fingerprint for tokenizer in tokenizers.values()}) != 1:
        shown = {location: tokenizer.model_dump() for location, tokenizer in tokenizers.items()}
        raise ShardError(
            f"the stage's shard sets were tokenized with different tokenizers: {json.dumps(shown)}"
        )
    return StageSources(
        [
            manifest.source_files(source.weight)
            for manifest, source in zip(manifests, stage.data, strict=True)
        ],
        manifests[0].tokenizer,
        max(manifest.settings.max_seq_len for manifest in manifests),
        tuple(ShardVersion(manifest.version_dir, manifest.manifest_sha256) for manifest in manifests),
    )


@dataclass(frozen=True)
class PinnedShards:
    """The shard versions a run's checkpoint recorded (see `ShardVersion`)."""

    run_dir: str
    checkpoint: str
    versions: tuple[ShardVersion, ...]

    def load(self, storage: Storage, index: int) -> ShardManifest:
        """The pinned version of source `index`; an error naming it when it is gone or changed."""
        version = self.versions[index]
        if not storage.exists(join(version.location, MANIFEST)):
            raise ShardError(
                f"{self.run_dir}: cannot resume: {self.checkpoint} trained on shard version "
                f"{version.location}, which no longer exists (deleted?). Restore it, or start a new run "
                "on the current shards (another --run-dir)"
            )
        manifest = load_manifest(storage, version.location)
        if manifest.manifest_sha256 != version.manifest_sha256:
            raise ShardError(
                f"{self.run_dir}: cannot resume: shard version {version.location} changed since "
                f"{self.checkpoint} trained on it (manifest digest differs)"
            )
        return manifest


def check_tokenizer(model: ModelConfig, manifest_tokenizer: ShardTokenizer) -> None:
    """The configured tokenizer (if any) must be the one the shards were made with."""
    from taiyi_ray.data.tokenizer import tokenizer_fingerprint

    if model.tokenizer is None:
        return
    configured = configure_tokenizer(load_tokenizer(model.tokenizer), get_chat_format(model.chat_format))
    if tokenizer_fingerprint(configured) != manifest_tokenizer.fingerprint:
        raise ShardError(
            f"model.tokenizer {model.tokenizer} differs from the tokenizer the shards were made with "
            f"({manifest_tokenizer.location}); re-run prepare_data with this tokenizer"
        )


def refuse_unusable_attention(model: ModelConfig, stage: StageConfig) -> None:
    """Refuse, before Ray Train starts, an attention backend that cannot train this stage.

    flash_attention_2 needs a GPU and the flash-attn package (checked here, on the driver: the image is
    the same on every node); flex_attention has no backward on CPU in torch. Each refusal is one line
    that names the backend, the limit and what to use instead.
    """
    backend = model.attn_implementation
    if backend == "flash_attention_2" and not stage.use_gpu:
        raise ValueError(
            "model.attn_implementation: flash_attention_2 needs a GPU (use_gpu is false); use sdpa"
        )
    if backend == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise ValueError(
            "model.attn_implementation: flash_attention_2 needs the flash-attn package, which is not installed; "
            "use sdpa (or install a flash-attn wheel in the image)"
        )
    if backend == "flex_attention" and not stage.use_gpu:
        raise ValueError(
            "model.attn_implementation: flex_attention cannot train on CPU (no backward in torch); use sdpa"
        )


def _tiny_base(model: ModelConfig, tokenizer_dir: str, run_dir: str, storage: Storage) -> str:
    """Save the random-weight base once, so stage 2, export and serving use the very same weights."""
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = load_tokenizer(storage.download_dir(tokenizer_dir, f"{scratch}/tokenizer"))
        base = build_tiny_qwen2(
            model.tiny,
            model.tiny.vocab_size or padded_vocab_size(len(tokenizer)),
            model.init_seed,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            attn_implementation=model.attn_implementation,
        )
        base.generation_config.eos_token_id = tokenizer.eos_token_id
        base.save_pretrained(f"{scratch}/base", safe_serialization=True)
        save_tokenizer(tokenizer, f"{scratch}/base")
        location = join(model_dir(run_dir), "base_model")
        storage.upload_dir(f"{scratch}/base", location)
    return location


@contextmanager
def stop_on_sigterm(storage: Storage, run_dir: str) -> Iterator[None]:
    """While training, SIGTERM (`ray job stop`, pod eviction of the driver) asks the workers to
    checkpoint and exit cleanly instead of killing the job; `--resume` continues from there."""

    def request_stop(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: asking the workers to checkpoint and stop")
        storage.write_text(join(run_dir, STOP_FILE), f"stop requested at {time.time()}\n")

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return
    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_spec(
    config: StageJobConfig,
    stage_name: str,
    run_dir: str,
    storage: Storage,
    resume: bool,
    validation: Validator | None = None,
) -> TrainSpec:
    stage: StageConfig = getattr(config, stage_name)
    resume_checkpoint = latest_complete_checkpoint(storage, run_dir) if resume else None
    saved = read_checkpoint_state(storage, resume_checkpoint) if resume_checkpoint else None
    pinned = None
    if saved is not None and saved.shards:
        pinned = PinnedShards(run_dir, str(resume_checkpoint), tuple(saved.shards))
    resolved = resolve_sources(stage, config.storage.root, config.data, storage, pinned)
    sources, tokenizer = resolved.files, resolved.tokenizer
    check_tokenizer(config.model, tokenizer)
    cap = stage.max_tokens_per_micro_batch
    if cap is not None and cap < resolved.max_seq_len:
        raise ValueError(
            f"{stage_name}.max_tokens_per_micro_batch {cap} is below the shards' max_seq_len "
            f"{resolved.max_seq_len}: a whole row must fit one forward pass"
        )
    init_from, init_dir = None, None
    if stage.init_from is not None:
        init_from, init_dir = read_result(storage, stage.init_from)
    elif stage_name == "stage2":
        raise ValueError(
            "stage2.init_from is not set: give the stage-1 run dir, e.g. --set stage2.init_from=runs/stage1-20261126-120000"
        )
    model = config.model
    if init_from is None and model.base is None:
        base = join(model_dir(run_dir), "base_model")
        if not storage.exists(join(base, "config.json")):
            base = _tiny_base(model, tokenizer.location, run_dir, storage)
        model = model.model_copy(update={"base": base})
    rows_per_step = stage.rows_per_step
    plan = DataPlan(sources, seed=stage.seed, shuffle=stage.shuffle)
    per_epoch = steps_per_epoch(len(plan.epoch_order(0)[0]), stage.num_workers, rows_per_step)
    if per_epoch == 0:
        raise ValueError(
            f"{stage_name}: {len(plan.epoch_order(0)[0])} rows per epoch do not fill one global batch of "
            f"{stage.global_batch_size()} rows; lower micro_batch_size/gradient_accumulation_steps/num_workers"
        )
    position = DataPosition()
    if saved is not None:
        position = saved.data_position()
        log.info("resuming %s from step %d (epoch %d)", run_dir, position.global_step, position.epoch)
    elif resume:
        # A retried Kubernetes job passes --resume on every attempt; the first has nothing to resume.
        log.info("--resume: %s holds no checkpoint yet; starting from the beginning", run_dir)
    total = position.global_step + steps_remaining(
        plan, position, stage.epochs, stage.num_workers, rows_per_step
    )
    if stage.max_steps is not None:
        total = min(total, stage.max_steps)
    if stage.validation is not None and validation is None:
        raise ValueError(f"{stage_name}.validation is set but no validation plan was built from it")
    return TrainSpec(
        stage_name=stage_name,
        run_dir=run_dir,
        storage=config.storage,
        model=model,
        stage=stage,
        sources=tuple(sources),
        max_seq_len=resolved.max_seq_len,
        tokenizer_dir=tokenizer.location,
        tokenizer_fingerprint=tokenizer.fingerprint,
        steps_per_epoch=per_epoch,
        total_steps=total,
        init_from=init_from,
        init_from_dir=init_dir,
        fault_at_step=fault_step_from_env(),
        resume_checkpoint=resume_checkpoint,
        validation=validation,
        shard_versions=resolved.versions,
    )


def run_stage_job(
    config: StageJobConfig,
    stage_name: str,
    run_dir: str,
    resume: bool = False,
    validation: Validator | None = None,
) -> StageSummary:
    """Run one stage as a Ray Train job; returns the summary (also written to summary.json).

    `validation`: what `stage.validation` asks for, built by the job (taiyi_ray.eval.validation)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from taiyi_ray.train.loop import train_loop_per_worker

    storage = Storage(config.storage)
    stage: StageConfig = getattr(config, stage_name)
    refuse_unusable_attention(config.model, stage)
    if not resume and latest_complete_checkpoint(storage, run_dir):
        raise ValueError(
            f"{run_dir} already holds checkpoints: pass --resume to continue it, or another --run-dir"
        )
    storage.remove(join(run_dir, STOP_FILE))
    init_ray(config.ray)
    spec = build_spec(config, stage_name, run_dir, storage, resume, validation)
    storage.write_text(
        join(run_dir, "config.yaml"), yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False)
    )
    storage.write_json(
        join(run_dir, "deepspeed_config.json"),
        build_deepspeed_config(stage, stage.num_workers, stage.use_gpu),
    )
    attempts_before = _count_attempts(storage, run_dir)
    filesystem, path = storage.arrow(run_dir)
    resources = {"CPU": stage.cpus_per_worker, **stage.resources_per_worker}
    check_workers_reach_storage(config.storage, run_dir, resources, stage.use_gpu)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec},
        torch_config=TorchConfig(backend="nccl" if stage.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=stage.num_workers, use_gpu=stage.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name="train",
            storage_path=path,
            storage_filesystem=filesystem if "://" in run_dir else None,
            failure_config=FailureConfig(max_failures=stage.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=stage.keep_checkpoints),
        ),
    )
    started = time.perf_counter()
    log.info(
        "%s: %d steps (%d per epoch x %d epochs), %d workers",
        stage_name,
        spec.total_steps,
        spec.steps_per_epoch,
        stage.epochs,
        stage.num_workers,
    )
    with stop_on_sigterm(storage, run_dir):
        trainer.fit()
    return write_summary(storage, run_dir, stage_name, spec, attempts_before, time.perf_counter() - started)


def check_workers_reach_storage(
    storage_config: StorageConfig, run_dir: str, resources: dict[str, float], use_gpu: bool
) -> None:
    """Probe the run dir from a node where a training worker would run, with that node's environment
    (credentials never travel in runtime_env). Failing here ends the job with the probe's message; a
    worker failing on it would be restarted by Ray Train into the same failure, max_failures times."""
    import ray

    if "://" not in run_dir:
        return
    custom = {key: value for key, value in resources.items() if key != "CPU"}
    probe = ray.remote(_probe_storage).options(
        num_cpus=resources["CPU"], num_gpus=1 if use_gpu else 0, resources=custom, max_retries=0
    )
    try:
        ray.get(probe.remote(storage_config, run_dir))
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, StorageAccessError):
            raise error.cause from None  # the message, without a remote traceback around it
        raise


def _probe_storage(storage_config: StorageConfig, location: str) -> None:
    import ray

    Storage(storage_config).check_access(
        location, f"a training worker's node ({ray.util.get_node_ip_address()})"
    )


def _count_attempts(storage: Storage, run_dir: str) -> int:
    attempts = join(run_dir, "attempts")
    return len(storage.list(attempts)) if storage.exists(attempts) else 0


def write_summary(
    storage: Storage, run_dir: str, stage_name: str, spec: TrainSpec, attempts_before: int, wall_s: float
) -> StageSummary:
    state = read_train_state(storage, run_dir)
    attempts_dir = join(run_dir, "attempts")
    attempts = [storage.read_json(item) for item in storage.list(attempts_dir)][attempts_before:]
    resumed = [item["resumed_from_step"] for item in attempts if item["resumed_from_step"] is not None]
    measured = state.model_dump(include=set(StageSummary.model_fields), exclude={"validation_s"})
    summary = StageSummary(
        **measured,  # steps, samples, tokens, losses, speed, data fingerprint, realised mix...
        stage=stage_name,
        restarts=max(len(attempts) - 1, 0),
        resumed_from_step=resumed[-1] if resumed else None,
        total_steps=spec.total_steps,
        steps_per_epoch=spec.steps_per_epoch,
        epochs=spec.stage.epochs,
        global_batch_size=spec.stage.global_batch_size(),
        num_workers=spec.stage.num_workers,
        method=spec.stage.method,
        zero_stage=spec.stage.zero_stage,
        init_from=spec.stage.init_from,
        model_dir=model_dir(run_dir),
        wall_time_s=round(wall_s, 1),
        shard_versions=list(spec.shard_versions),
        **validation_summary(storage, run_dir, state.validation_s, wall_s),
    )
    write_stage_summary(storage, run_dir, summary)
    return summary
