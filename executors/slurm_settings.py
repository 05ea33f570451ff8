"""The Slurm executor's settings: ``[slurm]`` in ``<workspace>/.w2s/settings.toml``, overridden by env.

A site's cluster differs from the next one's (partition names, accounts, QoS, module systems), so the
operator says it once per workspace::

    [slurm]
    partition = "gpu"
    account = "w2s-lab"
    qos = "normal"
    time = "4:00:00"        # default time limit of a job
    cpus = 4                # --cpus-per-task
    mem = "32G"             # --mem
    modules = ["module load cuda/12.1", "source /opt/venvs/w2s/bin/activate"]
    max_jobs = 32           # w2s jobs in the cluster's queue at once (the scheduler's limit)

``W2S_SLURM_PARTITION``, ``_ACCOUNT``, ``_QOS``, ``_TIME``, ``_CPUS``, ``_MEM`` and ``_MODULES`` (lines
separated by newlines) override the file. Values go onto sbatch's argument list (never through a shell),
and each is checked against what Slurm accepts so a typo is one line naming the field, not a job
failing later. ``modules`` lines are the operator's own shell, prepended to every batch script.
Read at each submit, so an edit applies to the next job without restarting the service.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.common.settings_file import read_section
from core.common.workspace import paths

SETTINGS_FILE = "settings.toml"
ENV_PREFIX = "W2S_SLURM_"
DEFAULT_MAX_JOBS = 32

_NAME_RE = re.compile(r"^[A-Za-z0-9_.+@-]+$")  # partition, account, QoS names
# Slurm's time formats: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS; or UNLIMITED
_TIME_RE = re.compile(r"^(\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|unlimited|infinite)$")
_MEM_RE = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class SlurmSettings:
    """What every batch job of this workspace is submitted with (empty: the cluster's default)."""

    partition: str = ""
    account: str = ""
    qos: str = ""
    time: str = ""
    cpus: int = 1
    mem: str = ""
    modules: tuple[str, ...] = field(default_factory=tuple)
    max_jobs: int = DEFAULT_MAX_JOBS

    def sbatch_options(self) -> list[str]:
        """The options these settings add to ``sbatch`` (one list element each, no shell)."""
        out = [f"--cpus-per-task={self.cpus}"]
        for flag, value in (("--partition", self.partition), ("--account", self.account), ("--qos", self.qos),
                            ("--time", self.time), ("--mem", self.mem)):
            if value:
                out.append(f"{flag}={value}")
        return out


def settings_path(root: Path | None = None) -> Path:
    return (root or paths().root) / ".w2s" / SETTINGS_FILE


def _check_text(where: str, value: Any, pattern: re.Pattern[str], example: str) -> str:
    if not isinstance(value, str):
        raise UserError(f"{where}: expected text like {example!r}, got {type(value).__name__}")
    value = value.strip()
    if value and not pattern.match(value):
        raise UserError(f"{where}: {value!r} is not what Slurm accepts (e.g. {example!r})")
    return value


def _check_count(where: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: expected a whole number >= 1, got {value!r}")
    return value


def _check_modules(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise UserError(f"{where}: expected a list of shell lines, e.g. [\"module load cuda/12.1\"]")
    lines = [line.strip() for line in value]
    if any("\x00" in line for line in lines):
        raise UserError(f"{where}: a line holds a NUL byte")
    return tuple(line for line in lines if line)


def load_settings(root: Path | None = None, environ: dict[str, str] | None = None) -> SlurmSettings:
    """The workspace's Slurm settings (file, then ``W2S_SLURM_*``); UserError naming the bad field."""
    path = settings_path(root)
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[str, Any]] = {}  # field -> (where it came from, value)
    section = read_section(path, "slurm")
    known = {"partition", "account", "qos", "time", "cpus", "mem", "modules", "max_jobs"}
    for key, value in section.items():
        if key not in known:
            raise UserError(f"{path}: slurm.{key}: unknown setting (known: {', '.join(sorted(known))})")
        raw[key] = (f"{path}: slurm.{key}", value)
    for key in known:
        name = ENV_PREFIX + key.upper()
        if name in env:
            raw[key] = (name, env[name])

    def text(key: str, pattern: re.Pattern[str], example: str) -> str:
        return _check_text(*raw[key], pattern, example) if key in raw else ""

    return SlurmSettings(
        partition=text("partition", _NAME_RE, "gpu"),
        account=text("account", _NAME_RE, "w2s-lab"),
        qos=text("qos", _NAME_RE, "normal"),
        time=text("time", _TIME_RE, "4:00:00"),
        mem=text("mem", _MEM_RE, "32G"),
        cpus=_check_count(*raw["cpus"]) if "cpus" in raw else 1,
        modules=_check_modules(*raw["modules"]) if "modules" in raw else (),
        max_jobs=_check_count(*raw["max_jobs"]) if "max_jobs" in raw else DEFAULT_MAX_JOBS,
    )
