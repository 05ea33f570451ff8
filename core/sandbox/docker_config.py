"""What a Docker sandbox container is made of: settings, user, mounts, GPUs, labels and name.

Pure functions from a :class:`~core.sandbox.base.SandboxSpec` to the keyword arguments of
``client.containers.create`` (no engine needed, so they are tested on their own); the policy they
implement is described in :mod:`core.sandbox.docker`. Defaults, all read from the environment of the
trusted process (a job's env can set them per job):

=====================  =================================================================
``W2S_DOCKER_IMAGE``   the image (default: the offline image, ``w2s-offline:<recipe hash>``)
``W2S_DOCKER_PYTHON``  the image's own interpreter; unset: the host's Python is mounted
``W2S_DOCKER_MEMORY``  memory limit, no swap beyond it (default: 3/4 of the host's RAM; 0: none)
``W2S_DOCKER_PIDS``    process limit (default 4096)
``W2S_DOCKER_CPUS``    CPU limit (default: every host CPU)
``W2S_DOCKER_UID``     the container's user when the operator is root (default 65534, nobody)
``W2S_DOCKER_TMP``     size of the private ``/tmp`` tmpfs, counted as memory (default 2g)
``W2S_DOCKER_SHM``     size of ``/dev/shm`` (default 1g)
``W2S_DOCKER_CGROUP``  the containers' cgroup parent (default: the engine's, ``/docker``)
=====================  =================================================================

CPU weight: a container is one cgroup, and the scheduler weighs a cgroup as one task against its
siblings. Its ``cpu_shares`` are 1024 per CPU it may use, so among containers and, with
``W2S_DOCKER_CGROUP=/`` (cgroupfs engines) beside the host's own processes, an N-thread training
weighs what the same threads weigh outside. Under the engine's default parent, the whole ``/docker``
group weighs one task against busy host processes: measured here, that made a CPU seed 25% slower
than under bwrap on a machine shared with other CPU work (``bench/README.md``, "Docker").
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.workspace import paths
from core.sandbox.base import Mount, SandboxSpec, SandboxUnavailable
from core.sandbox.bwrap import python_mounts
from core.sandbox.docker_image import offline_tag

NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")
NOBODY = 65534




def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # pragma: no cover - Linux always answers
        return 0


def parse_bytes(value: str, name: str) -> int:
    """``512m``, ``8g``, ``1073741824`` -> bytes; ``0``/``none`` -> 0 (no limit)."""
    text = value.strip().lower()
    if text in ("", "0", "none", "unlimited"):
        return 0
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text)
    if not found:
        raise SandboxUnavailable(f"{name}={value!r}: not a size (e.g. 512m, 8g)")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[found.group(2)]
    return int(float(found.group(1)) * scale)


@dataclass(frozen=True)
class DockerSettings:
    """Limits and identity for containers; :meth:`from_env` states the defaults."""

    image: str
    memory: int  # bytes, 0 = no limit
    pids: int
    cpus: float
    uid: int  # the container's user when the operator is root
    tmp_size: int
    shm_size: int
    python: str | None = None  # the image's interpreter; None: mount the host's
    cgroup_parent: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DockerSettings:
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type = int) -> Any:
            raw = env.get(name, "").strip()
            try:
                value = kind(raw) if raw else default
            except ValueError:
                raise SandboxUnavailable(f"{name}={raw!r}: not a number") from None
            if value < 0:
                raise SandboxUnavailable(f"{name}={raw!r}: must not be negative")
            return value

        memory_raw = env.get("W2S_DOCKER_MEMORY")
        memory = parse_bytes(memory_raw, "W2S_DOCKER_MEMORY") if memory_raw else (_host_memory() * 3 // 4)
        return cls(
            image=env.get("W2S_DOCKER_IMAGE") or offline_tag(),
            memory=memory,
            pids=number("W2S_DOCKER_PIDS", 4096),
            cpus=number("W2S_DOCKER_CPUS", float(os.cpu_count() or 1), float),
            uid=number("W2S_DOCKER_UID", NOBODY),
            tmp_size=parse_bytes(env.get("W2S_DOCKER_TMP", "2g"), "W2S_DOCKER_TMP"),
            shm_size=parse_bytes(env.get("W2S_DOCKER_SHM", "1g"), "W2S_DOCKER_SHM"),
            python=env.get("W2S_DOCKER_PYTHON") or None,
            cgroup_parent=env.get("W2S_DOCKER_CGROUP") or None,
        )


@dataclass(frozen=True)
class ContainerUser:
    """Who runs inside, and whose the writable mounts are again afterwards."""

    uid: int
    gid: int
    operator: tuple[int, int]

    @property
    def mapped(self) -> bool:
        return (self.uid, self.gid) != self.operator

    @classmethod
    def for_operator(cls, settings: DockerSettings) -> ContainerUser:
        uid, gid = os.getuid(), os.getgid()
        if uid != 0:
            return cls(uid, gid, (uid, gid))
        return cls(settings.uid, settings.uid, (uid, gid))


# --------------------------------------------------------------------------------------------
# the container's configuration (pure: tested without an engine)


def gpu_request(env: Mapping[str, str]) -> tuple[Any | None, dict[str, str]]:
    """A DeviceRequest for exactly the ids in ``CUDA_VISIBLE_DEVICES`` and the environment as the
    container sees it: the ids renumbered 0..n-1, and ``NVIDIA_VISIBLE_DEVICES`` set to those ids (or
    ``void``), the one variable added to the spec's, because a CUDA base image says ``all`` there and
    a host whose default runtime is nvidia's would otherwise hand every GPU to the container.
    UNVERIFIED on a GPU host (only the request and the environment are tested)."""
    out = dict(env)
    raw = env.get("CUDA_VISIBLE_DEVICES")
    ids = [part.strip() for part in (raw or "").split(",") if part.strip()]
    if not ids or any(i.startswith("-") for i in ids):  # unset, "" or "-1": the job was given no GPU
        out["NVIDIA_VISIBLE_DEVICES"] = "void"
        return None, out
    from docker.types import DeviceRequest  # type: ignore[import-untyped]

    out["CUDA_VISIBLE_DEVICES"] = ",".join(str(n) for n in range(len(ids)))
    out["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
    return DeviceRequest(device_ids=ids, capabilities=[["gpu"]]), out


def _command(spec: SandboxSpec, settings: DockerSettings) -> list[str]:
    command = [str(part) for part in spec.command]
    if settings.python and command and command[0] in (sys.executable, os.path.realpath(sys.executable)):
        command[0] = settings.python
    return command


def _environment(env: Mapping[str, str], settings: DockerSettings) -> dict[str, str]:
    out = dict(env)
    if settings.python and "PATH" in out:  # the host venv's bin is not mounted: the image's instead
        host_bin = str(Path(sys.executable).parent)
        parts = [str(Path(settings.python).parent) if p == host_bin else p for p in out["PATH"].split(":")]
        out["PATH"] = ":".join(parts)
    return out


def container_mounts(spec: SandboxSpec, settings: DockerSettings) -> list[Mount]:
    """The spec's mounts plus (unless the image brings its own) the Python installation, one per
    target, parents before children."""
    found: dict[str, Mount] = {}
    for mount in [*([] if settings.python else python_mounts()), *spec.mounts]:
        found[str(mount.inside)] = mount
    return sorted(found.values(), key=lambda m: len(Path(m.inside).parts))


def container_config(spec: SandboxSpec, settings: DockerSettings, user: ContainerUser, *,
                     name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` that run ``spec`` as this module describes."""
    from docker.types import Mount as DockerMount

    device, env = gpu_request(spec.env)
    env = _environment(env, settings)
    config: dict[str, Any] = {
        "image": settings.image,
        "command": _command(spec, settings),
        "name": name,
        "labels": dict(labels),
        "hostname": "w2s-sandbox",
        "user": f"{user.uid}:{user.gid}",
        "environment": env,
        "working_dir": str(spec.cwd),
        "mounts": [DockerMount(target=str(m.inside), source=str(m.source), type="bind", read_only=not m.writable)
                   for m in container_mounts(spec, settings)],
        "read_only": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,mode=1777{f',size={settings.tmp_size}' if settings.tmp_size else ''}"},
        "network_mode": "host" if spec.network else "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,
        "pids_limit": settings.pids or None,
        "nano_cpus": int(settings.cpus * 1e9) if settings.cpus else None,
        "stdin_open": False,
        "tty": False,
        "detach": True,
    }
    if settings.memory:
        config["mem_limit"] = settings.memory
        config["memswap_limit"] = settings.memory  # no swap: an idea over its limit is OOM-killed, not slowed
    if settings.shm_size:
        config["shm_size"] = settings.shm_size
    if settings.cpus:
        config["cpu_shares"] = max(2, min(262_144, int(round(1024 * settings.cpus))))
    if settings.cgroup_parent:
        config["cgroup_parent"] = settings.cgroup_parent
    if device is not None:
        config["device_requests"] = [device]
    return config


def docker_run_argv(config: Mapping[str, Any]) -> list[str]:
    """The ``docker run`` command line equivalent to ``config`` (to show or reproduce a run by hand)."""
    argv = ["docker", "run", "--rm", "--name", str(config["name"]), "--user", str(config["user"]),
            "--read-only", "--network", str(config["network_mode"]), "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--init", "--hostname", str(config["hostname"]),
            "--workdir", str(config["working_dir"])]
    for target, options in config["tmpfs"].items():
        argv += ["--tmpfs", f"{target}:{options}"]
    for mount in config["mounts"]:
        argv += ["--mount", f"type=bind,source={mount['Source']},target={mount['Target']}"
                 + (",readonly" if mount.get("ReadOnly") else "")]
    for key, value in config["environment"].items():
        argv += ["--env", f"{key}={value}"]
    for key, value in config["labels"].items():
        argv += ["--label", f"{key}={value}"]
    if config.get("mem_limit"):
        argv += ["--memory", str(config["mem_limit"]), "--memory-swap", str(config["memswap_limit"])]
    if config.get("pids_limit"):
        argv += ["--pids-limit", str(config["pids_limit"])]
    if config.get("nano_cpus"):
        argv += ["--cpus", f"{config['nano_cpus'] / 1e9:g}"]
    if config.get("shm_size"):
        argv += ["--shm-size", str(config["shm_size"])]
    if config.get("cpu_shares"):
        argv += ["--cpu-shares", str(config["cpu_shares"])]
    if config.get("cgroup_parent"):
        argv += ["--cgroup-parent", str(config["cgroup_parent"])]
    for request in config.get("device_requests", []):
        argv += ["--gpus", f"\"device={','.join(request['DeviceIDs'])}\""]
    return [*argv, str(config["image"]), *config["command"]]


# --------------------------------------------------------------------------------------------
# identity: labels and names


def _own_start_time() -> float | None:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # noqa: BLE001
        return None


def workspace_label() -> str:
    return str(paths().root)


def run_labels(restore: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The labels that let a cancel, a restarted service or a sweep find this run's container again."""
    labels = {
        "w2s.sandbox": "docker",
        "w2s.job": os.environ.get("W2S_JOB_ID", ""),
        "w2s.attempt": os.environ.get("W2S_JOB_ATTEMPT", ""),
        "w2s.workspace": workspace_label(),
        "w2s.owner": f"{os.getpid()}:{_own_start_time() or 0:.3f}",
    }
    if restore:
        labels["w2s.restore"] = json.dumps(dict(restore), sort_keys=True)
    return labels


def container_name(labels: Mapping[str, str]) -> str:
    job, attempt = labels.get("w2s.job", ""), labels.get("w2s.attempt", "")
    if not job:
        return f"w2s-{secrets.token_hex(6)}"
    return NAME_CHARS.sub("-", f"w2s-{job}-a{attempt or 0}")


