"""Static checks of the Dockerfile (no Docker engine needed): base images pinned by tag or digest, a
CUDA base, a non-root final USER, no secrets (credential-named ENV/ARG, key material, credential files),
the package installed under constraints.txt with the same torch pin after every directory its build
needs is copied in (jobs/ too: it is installed as taiyi_ray.jobs), and COPY sources that exist; the
GPU stack the speed switches need (a compiler for Triton, the `gpu` extra, flash-attn at its pin)."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from taiyi_ray.deploy import Finding
from taiyi_ray.deploy.credentials import AWS_KEY_ID
from taiyi_ray.deploy.pins import pinned_version
from taiyi_ray.deploy.pods import image_pinned, is_credential_name

SECRET_FILES = re.compile(
    r"(^|/)(\.env(\..*)?|\.aws|id_rsa|id_ed25519|.*\.pem|.*\.key|auth_token|credentials)$"
)
REQUIRED_IGNORES = (".git", ".venv", "runs", ".env")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def parse(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped."""
    instructions, buffer, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if not buffer:
            start = number
        if stripped.startswith("#"):
            continue
        buffer += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, arguments = buffer.strip().partition(" ")
            instructions.append(Instruction(start, keyword.upper(), arguments.strip()))
            buffer = ""
    return instructions


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda match: args.get(match.group(1), match.group(0)), text
    )


def check_dockerfile(path: Path, repo_root: Path) -> list[Finding]:
    """Every rule over one Dockerfile; `repo_root` is the build context."""
    instructions = parse(path.read_text())
    where = path.name
    findings: list[Finding] = []
    args: dict[str, str] = {}
    stages: set[str] = set()
    final_base, final_user = "", None
    for item in instructions:
        field = f"line {item.line} {item.keyword}"
        if item.keyword == "ARG":
            name, _, default = item.arguments.partition("=")
            args[name.strip()] = default.strip().strip('"')
        if item.keyword == "FROM":
            parts = _expand(item.arguments, args).split()
            image = next(part for part in parts if not part.startswith("--"))
            if image not in stages and not image_pinned(image):
                findings.append(
                    Finding(
                        "docker-base-pinned",
                        where,
                        field,
                        f"got {image!r}, expected name:TAG (not latest) or @sha256:DIGEST",
                    )
                )
            if len(parts) >= 3 and parts[-2].upper() == "AS":
                stages.add(parts[-1])
            final_base, final_user = image, None
        if item.keyword in ("COPY", "ADD"):
            findings += _copy(where, field, item.arguments, stages, repo_root)
        if item.keyword == "USER":
            final_user = item.arguments.split(":")[0].strip()
        if item.keyword in ("ENV", "ARG"):
            findings += _secrets(where, field, item)
        if AWS_KEY_ID.search(item.arguments):
            findings.append(
                Finding(
                    "docker-secrets",
                    where,
                    field,
                    "got an AWS access key id, expected no secrets in the image",
                )
            )
    if not final_base.startswith("nvidia/cuda:"):
        findings.append(
            Finding(
                "docker-cuda-base",
                where,
                "FROM",
                f"got final base {final_base!r}, expected nvidia/cuda:<version>-...",
            )
        )
    if final_user in (None, "", "root", "0"):
        findings.append(
            Finding(
                "docker-user",
                where,
                "USER",
                f"got {final_user!r} in the final stage, expected a non-root user",
            )
        )
    findings += _installs(where, instructions, args, repo_root)
    findings += _gpu_stack(
        where, final_base, [_expand(i.arguments, args) for i in instructions if i.keyword == "RUN"], repo_root
    )
    findings += _dockerignore(repo_root)
    return findings


def _copy(where: str, field: str, arguments: str, stages: set[str], repo_root: Path) -> list[Finding]:
    tokens = shlex.split(arguments)
    options = [token for token in tokens if token.startswith("--")]
    sources = [token for token in tokens if not token.startswith("--")][:-1]
    source_stage = next((option.split("=", 1)[1] for option in options if option.startswith("--from=")), None)
    findings = []
    if source_stage is not None:
        if source_stage not in stages and not image_pinned(source_stage):
            findings.append(
                Finding(
                    "docker-base-pinned",
                    where,
                    field,
                    f"got --from={source_stage!r}, expected a pinned image",
                )
            )
        return findings
    for source in sources:
        if SECRET_FILES.search(source.rstrip("/")):
            findings.append(
                Finding(
                    "docker-secrets",
                    where,
                    field,
                    f"got {source!r} copied in, expected no credential files in the image",
                )
            )
        elif source not in (".", "./") and not (repo_root / source).exists():
            findings.append(
                Finding(
                    "docker-copy", where, field, f"got {source!r}, which does not exist in the build context"
                )
            )
    return findings


def _secrets(where: str, field: str, item: Instruction) -> list[Finding]:
    names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", f" {item.arguments}") or [
        item.arguments.split("=")[0].strip()
    ]
    return [
        Finding(
            "docker-secrets",
            where,
            field,
            f"got {item.keyword} {name}, expected credentials only at run time (they stay in the image history)",
        )
        for name in names
        if is_credential_name(name)
    ]


PACKAGE_INSTALL = re.compile(
    r"install\b.*(-c|--constraint)\s+constraints\.txt\s+[\"']?\.(\[[^\]]*\])?[\"']?(\s|$)"
)


def _installs(
    where: str, instructions: list[Instruction], args: dict[str, str], repo_root: Path
) -> list[Finding]:
    runs = [_expand(item.arguments, args) for item in instructions if item.keyword == "RUN"]
    findings = _install_sources(where, instructions, args, repo_root)
    if not any(PACKAGE_INSTALL.search(run) for run in runs):
        findings.append(
            Finding(
                "docker-constraints",
                where,
                "RUN",
                "expected the package installed with `--constraint constraints.txt` (exact pins)",
            )
        )
    torch = pinned_version(repo_root, "torch")
    torch_runs = [match for run in runs for match in re.findall(r"torch==([\w.+-]+)", run)]
    if torch_runs != [torch] * len(torch_runs) or not torch_runs:
        findings.append(
            Finding(
                "docker-torch",
                where,
                "RUN",
                f"got torch=={torch_runs}, expected exactly torch=={torch} (constraints.txt)",
            )
        )
    python = args.get("PYTHON_VERSION", "")
    if not re.match(r"^3\.(1[1-9]|[2-9]\d)\.\d+$", python):
        findings.append(
            Finding(
                "docker-python",
                where,
                "ARG PYTHON_VERSION",
                f"got {python!r}, expected a pinned 3.11+ version (requires-python)",
            )
        )
    return findings


def _install_sources(
    where: str, instructions: list[Instruction], args: dict[str, str], repo_root: Path
) -> list[Finding]:
    """The build of `.` reads pyproject.toml and every directory it maps packages from: each must be
    copied in before the install, or the image build fails (or ships without the recipes)."""
    setuptools = (
        tomllib.loads((repo_root / "pyproject.toml").read_text()).get("tool", {}).get("setuptools", {})
    )
    needed = {"pyproject.toml", "taiyi_ray", *setuptools.get("package-dir", {}).values()}
    copied: set[str] = set()
    for item in instructions:
        if item.keyword in ("COPY", "ADD") and "--from=" not in item.arguments:
            copied.update(token.rstrip("/") for token in shlex.split(item.arguments)[:-1])
        if item.keyword == "RUN" and PACKAGE_INSTALL.search(_expand(item.arguments, args)):
            missing = sorted(needed - copied)
            if missing:
                return [
                    Finding(
                        "docker-install-sources",
                        where,
                        f"line {item.line} RUN",
                        f"got the package installed before {', '.join(missing)} is copied in, expected "
                        "every directory pyproject.toml builds from (packages, package-dir) copied first",
                    )
                ]
            break
    return []


def _gpu_stack(where: str, final_base: str, runs: list[str], repo_root: Path) -> list[Finding]:
    """What the speed switches need at run time: a compiler for Triton (torch.compile, liger-kernel),
    the `gpu` extra (liger-kernel, bitsandbytes) and flash-attn at the constraints' pin."""
    findings = []
    compiler = "-devel" in final_base or any(
        re.search(r"apt-get install\b.*\b(build-essential|gcc|clang)\b", run) for run in runs
    )
    if not compiler:
        findings.append(
            Finding(
                "docker-compiler",
                where,
                "FROM",
                f"got {final_base!r} and no compiler installed, expected a CUDA devel base or build-essential "
                "(Triton compiles at run time: torch.compile, liger-kernel)",
            )
        )
    if not any(re.search(r"install\b.*\.\[[^\]]*\bgpu\b", run) for run in runs):
        findings.append(
            Finding(
                "docker-gpu-extra",
                where,
                "RUN",
                "expected the package installed with its `gpu` extra (.[gpu])",
            )
        )
    pinned = pinned_version(repo_root, "flash-attn")
    installed = [match for run in runs for match in re.findall(r"flash-attn==([\w.+-]+)", run)]
    if not installed or any(version != pinned for version in installed):
        findings.append(
            Finding(
                "docker-flash-attn",
                where,
                "RUN",
                f"got flash-attn=={installed}, expected flash-attn=={pinned} (constraints.txt)",
            )
        )
    return findings


def _dockerignore(repo_root: Path) -> list[Finding]:
    path = repo_root / ".dockerignore"
    entries = set(path.read_text().split()) if path.is_file() else set()
    missing = [name for name in REQUIRED_IGNORES if name not in entries]
    if missing:
        return [
            Finding(
                "dockerignore",
                ".dockerignore",
                "",
                f"missing {missing}; expected local state and credentials kept out of the build",
            )
        ]
    return []
