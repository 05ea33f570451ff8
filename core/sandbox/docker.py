"""The second sandbox: one Docker container per sandboxed command, on a real Docker engine.

What the container gets (the same allow-list as :class:`~core.sandbox.bwrap.BwrapSandbox`):

- a read-only root filesystem from the image (default: the offline image of
  :mod:`core.sandbox.docker_image`), a private ``tmpfs`` ``/tmp`` (``W2S_DOCKER_TMP``, default 2g,
  counted against the memory limit) and ``/dev/shm`` (``W2S_DOCKER_SHM``, default 1g);
- bind mounts: each of the spec's :class:`~core.sandbox.base.Mount` at its own path, read-only
  unless it says writable, plus the Python installation the command needs (``sys.prefix``, the
  venv, and ``sys.base_prefix``, the interpreter it links to), read-only at the same paths. No
  Docker socket, no ``labeled_data/``, no ``.w2s/``: only what the spec names;
- the environment is exactly ``spec.env`` plus ``NVIDIA_VISIBLE_DEVICES`` (see GPUs; Docker adds
  ``HOSTNAME``, and ``HOME``/``PATH`` only when the spec has none): no ``DOCKER_HOST``, no secret;
- ``--network none`` unless ``spec.network`` (then the host's network: the private engine runs
  with ``--bridge=none``, so there is no bridge to join);
- every capability dropped, ``no-new-privileges``, ``docker-init`` as pid 1 (signals and zombies);
- a non-root user: the operator's uid:gid; when the operator is root, ``W2S_DOCKER_UID`` (default
  65534, ``nobody``): the writable mounts are handed to that uid before the run and given back
  (``lchown``, never following a link) after it, and staged inputs under the temp folder that
  it could not read are made readable (a read-only mount it cannot read elsewhere is refused);
- limits: ``W2S_DOCKER_MEMORY`` (default: 3/4 of the host's memory; no swap beyond it; ``0`` = none),
  ``W2S_DOCKER_PIDS`` (default 4096), ``W2S_DOCKER_CPUS`` (default: all host CPUs). These are read
  from the environment of the trusted process, so a job's env can set them per job;
- GPUs: when ``CUDA_VISIBLE_DEVICES`` is in ``spec.env``, a ``DeviceRequest`` for exactly those device
  ids (never ``count=-1``/"all") and, inside, ``CUDA_VISIBLE_DEVICES`` renumbered ``0..n-1``;
  ``NVIDIA_VISIBLE_DEVICES`` is always set (those ids, or ``void``) so an image's ``all`` never applies.
  UNVERIFIED: the development machines have no GPU and no NVIDIA container toolkit; only the request
  is tested;
- labels ``w2s.job``, ``w2s.attempt``, ``w2s.workspace`` (from ``W2S_JOB_ID``/``W2S_JOB_ATTEMPT`` and the
  workspace root), ``w2s.owner`` (pid:start time of the trusted process that made it) and the name
  ``w2s-<job>-a<attempt>`` (random for a run that is not a job), so a restarted service, a cancel or
  ``w2s`` itself can find exactly this container again (:func:`remove_containers`).

``W2S_DOCKER_IMAGE`` picks another image (the production one); ``W2S_DOCKER_PYTHON`` names the image's
own interpreter, and then the host's Python installation is not mounted and the command's
interpreter is replaced by that one.

Settings and their defaults: :mod:`core.sandbox.docker_config`.

:meth:`DockerSandbox.launch` creates the container and returns the ``Popen`` of a small host process
(:mod:`core.sandbox.docker_attach`) that starts it, streams its output and exits with its exit code;
:meth:`DockerSandbox.terminate` removes the container even when that process was killed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.common.process import process_alive
from core.sandbox.base import Sandbox, SandboxSpec, SandboxUnavailable, kill_tree
from core.sandbox.docker_attach import restore_owner
from core.sandbox.docker_config import (
    ContainerUser,
    DockerSettings,
    container_config,
    container_name,
    docker_run_argv,
    run_labels,
)
from core.sandbox.docker_image import offline_tag, repo_root

DOCKER_HOST_ENV = "DOCKER_HOST"
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
HOW_TO_START = ("start the engine (`sudo systemctl start docker`, or `sudo dockerd &`; CI: "
                "`source .ci/services/docker.sh` for a private one) or point DOCKER_HOST at a running one")
TERM_GRACE_S = 1  # inside the attach process: SIGTERM, then SIGKILL this much later


def engine_address() -> str:
    return os.environ.get(DOCKER_HOST_ENV) or DEFAULT_DOCKER_HOST


def _short(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    found = re.search(r"(No such file or directory|Connection refused|Permission denied|timed out)", text)
    return found.group(1) if found else (text[:160] or type(exc).__name__)


def connect(timeout: float = 60) -> Any:
    """A Docker SDK client for ``DOCKER_HOST`` that answered a ping; SandboxUnavailable (one line
    naming DOCKER_HOST and how to start the engine) otherwise."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - a dependency of the project
        raise SandboxUnavailable("the docker Python package is missing: `uv sync`") from None
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - every way of not answering is the same to the user
        raise SandboxUnavailable(
            f"Docker engine not reachable at DOCKER_HOST={engine_address()} ({_short(exc)}): {HOW_TO_START}"
        ) from None
    return client


# --------------------------------------------------------------------------------------------
# host-side preparation


def _other_can_read(path: Path) -> bool:
    mode = path.stat().st_mode
    need = 0o005 if path.is_dir() else 0o004
    return mode & need == need


def _grant_read(top: Path, limit: int = 20_000) -> None:
    """Add o+r (o+x for folders) under a staged folder, never following a link."""
    seen = 0
    for root, dirs, files in os.walk(top, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(root, name)
            seen += 1
            if seen > limit:
                raise SandboxUnavailable(f"{top}: more than {limit} files to make readable for the container")
            if path.is_symlink():
                continue
            os.chmod(path, path.stat().st_mode | (0o005 if path.is_dir() else 0o004))
    os.chmod(top, top.stat().st_mode | 0o005)


def prepare_mounts(spec: SandboxSpec, user: ContainerUser) -> list[str]:
    """Make the mounts usable by the container's user; returns the writable paths to give back."""
    writable = [str(m.source) for m in spec.mounts if m.writable]
    if not user.mapped:
        return []
    temp = Path(tempfile.gettempdir()).resolve()
    for mount in spec.mounts:
        if mount.writable or not mount.source.exists():
            continue
        source = mount.source.resolve()
        if _other_can_read(source):
            continue
        if source.is_relative_to(temp):
            _grant_read(source)
        else:
            raise SandboxUnavailable(
                f"{source} is not readable by the container's user (uid {user.uid}): make it world-readable, "
                f"or set W2S_DOCKER_UID")
    for path in writable:
        restore_owner([path], user.uid, user.gid)
    return writable


# --------------------------------------------------------------------------------------------
# finding and removing containers


def list_containers(client: Any, workspace: str | None = None, job: str | None = None) -> list[Any]:
    """Every w2s sandbox container (running or not) of ``workspace`` (and ``job``), as SDK objects."""
    filters = ["w2s.sandbox=docker"]
    if workspace is not None:
        filters.append(f"w2s.workspace={workspace}")
    if job is not None:
        filters.append(f"w2s.job={job}")
    return list(client.containers.list(all=True, filters={"label": filters}, ignore_removed=True))


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the trusted process that created the container still runs (pid + start time)."""
    pid, _, ctime = str(labels.get("w2s.owner", "")).partition(":")
    try:
        return process_alive(int(pid), float(ctime) if ctime and float(ctime) else None)
    except ValueError:
        return False


def remove_container(container: Any) -> None:
    """Force-remove it (SIGKILL inside) and give its writable folders back to the operator."""
    labels = dict(getattr(container, "labels", {}) or {})
    try:
        container.remove(force=True)
    except Exception as exc:  # noqa: BLE001
        if "No such container" not in str(exc) and "404" not in str(exc):
            raise
    restore = labels.get("w2s.restore")
    if restore:
        try:
            spec = json.loads(restore)
            restore_owner(list(spec["paths"]), int(spec["uid"]), int(spec["gid"]))
        except (ValueError, KeyError, TypeError):
            pass


def remove_containers(client: Any, workspace: str, job: str | None = None, orphans_only: bool = False) -> list[str]:
    """Remove this workspace's containers (of ``job``; or only those whose creator is gone); their names."""
    removed = []
    for container in list_containers(client, workspace, job):
        if orphans_only and owner_alive(container.labels):
            continue
        remove_container(container)
        removed.append(str(container.name))
    return removed


# --------------------------------------------------------------------------------------------
# the sandbox


@dataclass
class _Run:
    container_id: str
    restore: list[str] = field(default_factory=list)
    operator: tuple[int, int] = (0, 0)


class DockerSandbox(Sandbox):
    name = "docker"
    isolated = True

    def __init__(self, settings: DockerSettings | None = None) -> None:
        self._settings = settings
        self._client: Any = None
        self._runs: weakref.WeakKeyDictionary[subprocess.Popen[bytes], _Run] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def settings(self) -> DockerSettings:
        return self._settings or DockerSettings.from_env()

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = connect()
            return self._client

    def problem(self) -> str | None:
        try:
            settings = self.settings
            client = self.client()
        except SandboxUnavailable as exc:
            with self._lock:
                self._client = None
            return str(exc)
        import docker

        try:
            client.images.get(settings.image)
        except docker.errors.ImageNotFound:
            how = ("build it with `w2s image build --offline`" if settings.image == offline_tag()
                   else "pull or build it, or unset W2S_DOCKER_IMAGE")
            return f"Docker image {settings.image} not found at DOCKER_HOST={engine_address()}: {how}"
        except Exception as exc:  # noqa: BLE001 - the engine went away between two calls
            with self._lock:
                self._client = None
            return f"Docker engine not reachable at DOCKER_HOST={engine_address()} ({_short(exc)}): {HOW_TO_START}"
        return None

    def config(self, spec: SandboxSpec, restore: Sequence[str] = ()) -> dict[str, Any]:
        """The container configuration ``launch`` would use for ``spec``."""
        settings = self.settings
        user = ContainerUser.for_operator(settings)
        gives_back = {"uid": user.operator[0], "gid": user.operator[1], "paths": list(restore)} if restore else None
        labels = run_labels(gives_back)
        return container_config(spec, settings, user, name=container_name(labels), labels=labels)

    def argv(self, spec: SandboxSpec) -> list[str]:
        return docker_run_argv(self.config(spec))

    def launch(self, spec: SandboxSpec, stdout: int | IO[Any] | None, stderr: int | IO[Any] | None,
               stdin: int | IO[Any] | None) -> subprocess.Popen[bytes]:
        client = self.client()
        settings = self.settings
        user = ContainerUser.for_operator(settings)
        restore = prepare_mounts(spec, user)
        config = self.config(spec, restore)
        try:
            container = self._create(client, config)
        except BaseException:
            restore_owner(restore, *user.operator)
            raise
        argv = [sys.executable, "-m", "core.sandbox.docker_attach", container.id, "--grace", str(TERM_GRACE_S)]
        out = next((m.source for m in spec.mounts if m.writable and spec.out is not None
                    and Path(m.inside) == Path(spec.out)), None)
        if out is not None:
            argv += ["--out", str(out)]
        if restore:
            argv += ["--restore", json.dumps({"uid": user.operator[0], "gid": user.operator[1], "paths": restore})]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(repo_root()),
               "PYTHONDONTWRITEBYTECODE": "1"}
        env.update({k: os.environ[k] for k in ("DOCKER_HOST", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")
                    if k in os.environ})
        try:
            proc = subprocess.Popen(argv, env=env, cwd=str(repo_root()), stdin=subprocess.DEVNULL, stdout=stdout,
                                    stderr=stderr, start_new_session=True, close_fds=True)
        except OSError as exc:
            remove_container(container)
            raise SandboxUnavailable(f"cannot start the container's attach process: {exc}") from None
        with self._lock:
            self._runs[proc] = _Run(container.id, list(restore), user.operator)
        return proc

    @staticmethod
    def _create(client: Any, config: dict[str, Any]) -> Any:
        import docker

        try:
            return client.containers.create(**config)
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: the name is taken (a second sandbox run in this attempt)
                raise SandboxUnavailable(f"docker could not create the sandbox container: {exc.explanation or exc}") from None
        config = {**config, "name": f"{config['name']}-{secrets.token_hex(3)}"}
        try:
            return client.containers.create(**config)
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(f"docker could not create the sandbox container: {exc.explanation or exc}") from None

    def container_of(self, proc: subprocess.Popen[bytes]) -> str | None:
        """The id of the container ``proc`` (from :meth:`launch`) stands for."""
        with self._lock:
            run = self._runs.get(proc)
        return run.container_id if run else None

    def terminate(self, proc: subprocess.Popen[bytes], grace: float = 0.0) -> None:
        """Stop the attach process (which stops the container: SIGTERM, then SIGKILL), then remove the
        container whatever happened to that process, and give the writable folders back."""
        kill_tree(proc, grace)
        with self._lock:
            run = self._runs.pop(proc, None)
        if run is None:
            return
        try:
            container = self.client().containers.get(run.container_id)
        except Exception:  # noqa: BLE001 - already removed by the attach process
            container = None
        if container is not None:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        restore_owner(run.restore, *run.operator)
