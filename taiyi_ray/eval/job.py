"""`jobs/evaluate.py`: evaluate a model, an endpoint or the oracle on an evaluation catalogue.

Read as one workflow: load the catalogue's sets (missing files reported), decide where answers come
from (oracle / exported model through Ray Data actors / Serve endpoint), skip sets this run directory
already finished the same way, answer the rest (through the prediction cache), finish each set
(parse, score, write), and write the report. Returns the figures of the job's final JSON line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.data.catalogue import load_catalogue
from taiyi_ray.eval.baselines import ReferenceScores, load_reference
from taiyi_ray.eval.cache import PredictionCache, model_fingerprint
from taiyi_ray.eval.finalise import SetResult, Timing, finalise_set, load_finished, missing_result
from taiyi_ray.eval.generate import Generator, generate_sets
from taiyi_ray.eval.generation_types import settings_key
from taiyi_ray.eval.oracle import oracle_outputs
from taiyi_ray.eval.report import EvalSummary, RunInfo, write_report
from taiyi_ray.eval.sets import EvalSet, load_eval_set, select_entries
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerSource:
    """Where answers come from; `identity` keys the cache and the finished-set fingerprints."""

    kind: Literal["oracle", "model", "endpoint"]
    identity: str
    description: str
    served_model: str | None = None


def answer_source(config: EvalJobConfig, storage: Storage, oracle: bool, oracle_noise: float) -> AnswerSource:
    settings = config.eval
    if oracle:
        seed = settings.generation.seed
        return AnswerSource("oracle", f"oracle noise={oracle_noise} seed={seed}", _oracle_text(oracle_noise))
    if oracle_noise:
        raise ValueError(f"--oracle-noise {oracle_noise} needs --oracle; expected both or neither")
    decoding = settings_key(settings.generation)
    if settings.endpoint is not None:
        from taiyi_ray.eval.endpoint import served_model

        model = served_model(settings.endpoint)
        identity = f"endpoint {settings.endpoint} model {model} {decoding}"
        return AnswerSource("endpoint", identity, f"endpoint {settings.endpoint} ({model})", model)
    if settings.model is None:
        raise ValueError(
            "nothing to evaluate: set eval.model (--model DIR), eval.endpoint (--endpoint URL) or --oracle"
        )
    fingerprint = model_fingerprint(storage, settings.model)
    identity = f"model {fingerprint} {decoding}"
    return AnswerSource("model", identity, f"model {settings.model} (fingerprint {fingerprint[:12]})")


def _oracle_text(noise: float) -> str:
    return "oracle (gold answers)" + (f", noise {noise}" if noise else "")


class EvalJobResult(EvalSummary):
    """The evaluation job's result line: its summary, the speed per set, where the report is."""

    items_per_s: dict[str, float | None]
    report: str


def run_eval_job(
    config: EvalJobConfig, run_dir: str, oracle: bool = False, oracle_noise: float = 0.0
) -> EvalJobResult:
    """Evaluate, write the run directory's report, and return the final JSON line's figures."""
    started = time.perf_counter()
    storage = Storage(config.storage)
    settings = config.eval
    source = answer_source(config, storage, oracle, oracle_noise)
    catalogue = load_catalogue(settings.catalogue)
    sets = [
        load_eval_set(entry, storage, settings.limit, settings.template_seed)
        for entry in select_entries(catalogue, settings.sets)
    ]
    reference = _reference(storage, settings.reference_scores)
    results, pending = _split_finished(sets, source, storage, run_dir)
    results.update(_answer(pending, config, source, storage, run_dir, oracle_noise))
    ordered = [results[eval_set.name] for eval_set in sets]
    info = RunInfo(
        answers=source.description,
        catalogue=catalogue.name,
        limit=settings.limit,
        generation="none (oracle)" if oracle else settings_key(settings.generation),
        wall_s=time.perf_counter() - started,
    )
    summary = write_report(storage, run_dir, ordered, reference, info)
    return EvalJobResult(
        **dict(summary),
        items_per_s={result.name: result.timing.items_per_s for result in ordered if not result.missing},
        report=join(run_dir, "report.md"),
    )


def _reference(storage: Storage, location: str | None) -> ReferenceScores | None:
    """The published scores, or None: an absent file (no ../shared beside the checkout) only loses the
    paper's columns, so a config may point at ../shared and still run where it is missing."""
    if location is None:
        return None
    if not storage.exists(location):
        log.warning("eval.reference_scores %s is absent; the report shows our scores only", location)
        return None
    return load_reference(storage, location)


def _split_finished(
    sets: list[EvalSet], source: AnswerSource, storage: Storage, run_dir: str
) -> tuple[dict[str, SetResult], list[tuple[EvalSet, str]]]:
    """Results known already (missing sets; sets this run dir finished the same way), and the rest."""
    results: dict[str, SetResult] = {}
    pending: list[tuple[EvalSet, str]] = []
    for eval_set in sets:
        fingerprint = _fingerprint(source, eval_set)
        if eval_set.missing:
            results[eval_set.name] = missing_result(eval_set)
            continue
        finished = load_finished(storage, run_dir, eval_set.name, fingerprint)
        if finished is not None:
            log.info("%s: already finished in %s the same way; kept", eval_set.name, run_dir)
            results[eval_set.name] = finished
        else:
            pending.append((eval_set, fingerprint))
    return results, pending


def _fingerprint(source: AnswerSource, eval_set: EvalSet) -> str:
    """What a finished set's result depends on: the answer source, the catalogue entry and the items."""
    parts = (source.identity, eval_set.entry.model_dump_json(), eval_set.digest())
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()


def _answer(
    pending: list[tuple[EvalSet, str]],
    config: EvalJobConfig,
    source: AnswerSource,
    storage: Storage,
    run_dir: str,
    oracle_noise: float,
) -> dict[str, SetResult]:
    if not pending:
        return {}
    if source.kind == "oracle":
        seed = config.eval.generation.seed
        return {
            eval_set.name: finalise_set(
                eval_set,
                oracle_outputs(eval_set, oracle_noise, seed),
                storage,
                run_dir,
                Timing(),
                fingerprint,
            )
            for eval_set, fingerprint in pending
        }
    cache_root = config.eval.cache_dir or join(config.storage.root, "eval-cache")
    about = {"source": source.description, "generation": config.eval.generation.model_dump()}
    cache = PredictionCache(storage, cache_root, source.identity, about)
    return generate_sets(pending, cache, _generator(config, source), storage, run_dir)


def _generator(config: EvalJobConfig, source: AnswerSource) -> Generator:
    settings = config.eval
    if source.kind == "endpoint":
        from taiyi_ray.eval.endpoint import generate_with_endpoint

        assert settings.endpoint is not None and source.served_model is not None
        url, model = settings.endpoint, source.served_model
        return lambda requests, on_result: generate_with_endpoint(
            url, model, requests, settings.generation, settings.endpoint_concurrency, on_result
        )
    from taiyi_ray.eval.actors import generate_with_actors
    from taiyi_ray.runtime import init_ray

    def run(requests: Any, on_result: Any) -> None:
        if requests:
            init_ray(config.ray)
        generate_with_actors(requests, settings, config.storage, on_result)

    return run
