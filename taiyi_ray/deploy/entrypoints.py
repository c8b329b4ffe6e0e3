"""RayJob entrypoints: each runs an existing jobs/ script on an existing config that validates with its
job's model (overrides included), on object storage (every job's cluster is deleted afterwards), and the
steps hand results on through the config keys: stage 2 starts from stage 1's run dir, export reads
stage 2's, evaluation and serving read the export's model."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taiyi_ray.config import JOB_CONFIGS, ConfigError, is_uri, load_job_config
from taiyi_ray.config.jobs import JobConfig
from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.manifests import as_int

PIPELINE = ("prepare_data", "stage1", "stage2", "export", "evaluate")
VALUE_OPTIONS = frozenset(
    {"--config", "--set", "--run-dir", "--limit", "--model", "--endpoint", "--oracle-noise"}
)


@dataclass
class Invocation:
    """One parsed `python jobs/<job>.py ...` entrypoint, with its validated config (None if invalid)."""

    where: str
    job: str
    script: str
    config_path: str | None
    overrides: list[str] = field(default_factory=list)
    run_dir: str | None = None
    flags: set[str] = field(default_factory=set)
    config: JobConfig | None = None
    backoff_limit: int = 0
    cluster: dict[str, Any] = field(default_factory=dict)


def parse_entrypoint(text: str) -> tuple[str, dict[str, list[str]], set[str]]:
    """(`jobs/x.py`, {option: [values]}, {flags}) of `python jobs/x.py --opt value --flag ...`."""
    tokens = shlex.split(text)
    if len(tokens) < 2 or Path(tokens[0]).name not in ("python", "python3"):
        raise ValueError(f"got {text!r}, expected `python jobs/<job>.py --config <file> ...`")
    options: dict[str, list[str]] = {}
    flags: set[str] = set()
    rest = tokens[2:]
    while rest:
        token = rest.pop(0)
        if token in VALUE_OPTIONS and rest:
            options.setdefault(token, []).append(rest.pop(0))
        elif token.startswith("--"):
            flags.add(token)
        else:
            raise ValueError(f"unexpected argument {token!r} in {text!r}")
    return tokens[1], options, flags


def _last(values: list[str] | None) -> str | None:
    """The value of an option given once or more (the last one wins, as with argparse)."""
    return values[-1] if values else None


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Temporarily add `variables` to os.environ (configs expand ${VAR} from the pod's environment)."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_invocation(
    doc: dict[str, Any], repo_root: Path, env: dict[str, str]
) -> tuple[Invocation | None, list[Finding]]:
    """Parse and validate the entrypoint of one RayJob; findings for every problem."""
    where, spec = resource_name(doc), doc.get("spec") or {}
    try:
        script, options, flags = parse_entrypoint(str(spec.get("entrypoint", "")))
    except ValueError as error:
        return None, [Finding("entrypoint-script", where, "spec.entrypoint", str(error))]
    job = Path(script).stem
    invocation = Invocation(
        where,
        job,
        script,
        _last(options.get("--config")),
        options.get("--set", []),
        _last(options.get("--run-dir")),
        flags,
        backoff_limit=as_int(spec.get("backoffLimit")),
        cluster=spec.get("rayClusterSpec") or {},
    )
    if (
        Path(script).parent.as_posix() != "jobs"
        or job not in JOB_CONFIGS
        or not (repo_root / script).is_file()
    ):
        expected = ", ".join(f"jobs/{name}.py" for name in JOB_CONFIGS)
        return None, [
            Finding(
                "entrypoint-script",
                where,
                "spec.entrypoint",
                f"got script {script!r}, expected an existing one of {expected}",
            )
        ]
    if invocation.config_path is None or not (repo_root / invocation.config_path).is_file():
        got = invocation.config_path
        return None, [
            Finding(
                "entrypoint-config",
                where,
                "spec.entrypoint",
                f"got --config {got!r}, expected an existing file under configs/",
            )
        ]
    try:
        with environment(env):
            config = load_job_config(
                JOB_CONFIGS[job], repo_root / invocation.config_path, invocation.overrides
            )
    except ConfigError as error:
        return None, [
            Finding(
                "entrypoint-config",
                where,
                "spec.entrypoint",
                f"{invocation.config_path} does not validate for {job}: {error}",
            )
        ]
    invocation.config = config
    return invocation, list(_storage(invocation, config.storage.root))


def _storage(invocation: Invocation, root: str) -> Iterator[Finding]:
    if not is_uri(root):
        yield Finding(
            "storage-uri",
            invocation.where,
            "spec.entrypoint",
            f"got storage.root {root!r}, expected an object-store URI (s3://...): the job's cluster and its disks are deleted",
        )
    if invocation.run_dir is None or not is_uri(invocation.run_dir):
        yield Finding(
            "storage-uri",
            invocation.where,
            "spec.entrypoint",
            f"got --run-dir {invocation.run_dir!r}, expected an s3:// URI",
        )
    if (
        invocation.job in ("stage1", "stage2")
        and invocation.backoff_limit > 0
        and "--resume" not in invocation.flags
    ):
        yield Finding(
            "resume",
            invocation.where,
            "spec.entrypoint",
            f"backoffLimit {invocation.backoff_limit} retries the job, but without --resume a retry fails on its own checkpoints",
        )


def check_pipeline(invocations: list[Invocation]) -> list[Finding]:
    """Each step once, one storage root, and every hand-over key pointing at the previous step's output."""
    by_job: dict[str, Invocation] = {}
    findings = []
    for invocation in invocations:
        if invocation.job in by_job:
            findings.append(
                Finding(
                    "pipeline-steps",
                    invocation.where,
                    "spec.entrypoint",
                    f"{invocation.job} also runs in {by_job[invocation.job].where}",
                )
            )
        by_job[invocation.job] = invocation
    missing = [job for job in PIPELINE if job not in by_job]
    if missing:
        findings.append(
            Finding(
                "pipeline-steps",
                "RayJobs",
                "",
                f"got no RayJob for {missing}, expected one per step of {PIPELINE}",
            )
        )
    roots = {invocation.config.storage.root for invocation in invocations if invocation.config is not None}
    if len(roots) > 1:
        findings.append(
            Finding(
                "chain",
                "RayJobs",
                "storage.root",
                f"got {sorted(roots)}, expected one storage root for all steps",
            )
        )
    links = [
        ("stage2", "stage2.init_from", lambda c: c.stage2.init_from, "stage1", ""),
        ("export", "export.from_run", lambda c: c.export.from_run, "stage2", ""),
        ("evaluate", "eval.model", lambda c: c.eval.model, "export", "/model"),
    ]
    for job, key, value_of, source, suffix in links:
        if job in by_job and source in by_job:
            got, expected = value_of(by_job[job].config), f"{by_job[source].run_dir}{suffix}"
            if got != expected:
                findings.append(
                    Finding(
                        "chain",
                        by_job[job].where,
                        "spec.entrypoint",
                        f"{key} got {got!r}, expected {source}'s output {expected!r}",
                    )
                )
    return findings
