"""Images for the Docker sandbox: an offline one built from Debian packages, and a production one.

**Offline** (machines without a registry: these, CI). ``debootstrap --variant=minbase
--include=python3 bookworm`` gives a small Debian root whose ``python3`` pulls in the shared
libraries a Debian-built interpreter needs (libssl, libffi, sqlite, bz2, lzma, libstdc++, ...); the
rootfs is tarred and ``docker import``-ed. The project's own Python installation and virtual
environment are *mounted* read-only at run time (see :mod:`core.sandbox.docker`), so the image never
needs rebuilding when dependencies change. The image is tagged by a hash of the recipe below
(``w2s-offline:<hash>``): built once, reused; the rootfs tarball is kept in the cache folder
(``$W2S_CACHE_DIR/docker``, default ``~/.cache/w2s/docker``) so a rebuild after an engine reset does
not download again. Needs root (debootstrap) and Debian's mirror (``W2S_DEBIAN_MIRROR``).

**Production** (GPU hosts, RunPod): the repository's ``Dockerfile`` (CUDA base image, ``uv sync
--frozen --extra gpu``, the project installed under ``/opt/w2s``), built with ``w2s image build``
and pushed with ``w2s image push``. UNVERIFIED here: no registry and no GPU are reachable from the
development machines, so neither the build nor the push has been run; only the offline image is
tested.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.common.errors import UserError

OFFLINE_REPOSITORY = "w2s-offline"
PRODUCTION_REPOSITORY = "w2s"
MIRROR_ENV = "W2S_DEBIAN_MIRROR"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_ENV = "W2S_CACHE_DIR"
# Everything that decides the image's content; its hash is the tag. Change anything here and the
# next build makes (and caches) a new image.
OFFLINE_RECIPE: dict[str, Any] = {
    "recipe": 1,
    "tool": "debootstrap",
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3"],
    # /root is 0700 in Debian: the host interpreter may live under it (pyenv) and the container's
    # user is not root, so it must be able to walk through it to the read-only mount
    "post": ["chmod 0755 /root", "empty /var/cache/apt and /var/lib/apt/lists"],
}
# ``docker import --change`` lines: a label only (no ENV: the sandbox's environment is exactly its spec's)
IMPORT_CHANGES: list[str] = []

Say = Callable[[str], None]


def recipe_hash(recipe: dict[str, Any] | None = None) -> str:
    """The rootfs's content hash (names the cached tarball)."""
    blob = json.dumps(recipe or OFFLINE_RECIPE, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def offline_tag() -> str:
    """``w2s-offline:<hash of the rootfs recipe and the import changes>``."""
    blob = json.dumps({"rootfs": recipe_hash(), "changes": IMPORT_CHANGES}, sort_keys=True).encode()
    return f"{OFFLINE_REPOSITORY}:{hashlib.sha256(blob).hexdigest()[:12]}"


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV)
    if base:
        root = Path(base)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "w2s"
    return root / "docker"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """One build at a time per cache folder (two test sessions asking at once build once)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _image_exists(client: Any, tag: str) -> bool:
    import docker  # type: ignore[import-untyped]

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _debootstrap(target: Path, mirror: str, say: Say) -> None:
    if os.geteuid() != 0:
        raise UserError("building the offline image needs root (debootstrap); run `sudo w2s image build --offline`")
    binary = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)), None)
    if binary is None:
        raise UserError("debootstrap is not installed: `apt-get install debootstrap` (the offline image is "
                        "built from Debian packages)")
    argv = [binary, f"--variant={OFFLINE_RECIPE['variant']}", f"--include={','.join(OFFLINE_RECIPE['include'])}",
            OFFLINE_RECIPE["suite"], str(target), mirror]
    say(f"debootstrap {OFFLINE_RECIPE['suite']} from {mirror} (about 40 s)")
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise UserError(f"debootstrap failed (exit {done.returncode}): {' | '.join(tail)}")
    os.chmod(target / "root", 0o755)
    for sub in ("var/cache/apt", "var/lib/apt/lists"):
        folder = target / sub
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def rootfs_tarball(say: Say = print) -> Path:
    """The cached rootfs tarball for the current recipe, made (debootstrap + tar) when missing."""
    folder = cache_dir()
    tarball = folder / f"rootfs-{recipe_hash()}.tar"
    if tarball.is_file():
        return tarball
    mirror = os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=folder))
    try:
        _debootstrap(work / "root", mirror, say)
        partial = folder / f".{tarball.name}.{os.getpid()}.tmp"
        done = subprocess.run(["tar", "-C", str(work / "root"), "--numeric-owner", "-cf", str(partial), "."],
                              capture_output=True, text=True)
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise UserError(f"tar of the offline rootfs failed: {done.stderr.strip()[:300]}")
        os.replace(partial, tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tarball


def build_offline(client: Any, say: Say = print, force: bool = False) -> str:
    """The offline image's tag, building it first when the engine does not have it."""
    tag = offline_tag()
    with _build_lock(cache_dir()):
        if not force and _image_exists(client, tag):
            say(f"image {tag} present")
            return tag
        tarball = rootfs_tarball(say)
        repository, version = tag.split(":")
        say(f"docker import {tarball.name} as {tag}")
        client.api.import_image(src=str(tarball), repository=repository, tag=version,
                                changes=[*IMPORT_CHANGES, f"LABEL w2s.recipe={version}"])
        if not _image_exists(client, tag):
            raise UserError(f"docker import did not produce {tag}")
    return tag


def build_production(client: Any, tag: str, say: Say = print) -> str:
    """``docker build`` of the repository's Dockerfile. UNVERIFIED here (needs the CUDA base image from
    a registry and the package index): written for GPU hosts and RunPod."""
    dockerfile = repo_root() / "Dockerfile"
    if not dockerfile.is_file():
        raise UserError(f"{dockerfile}: no Dockerfile in this checkout")
    say(f"docker build -t {tag} {repo_root()}")
    for chunk in client.api.build(path=str(repo_root()), tag=tag, rm=True, decode=True):
        if "stream" in chunk:
            text = str(chunk["stream"]).rstrip()
            if text:
                say(text)
        if "error" in chunk:
            raise UserError(f"docker build failed: {str(chunk['error']).strip()[:300]}")
    return tag


def push(client: Any, tag: str, say: Say = print) -> None:
    """``docker push`` with the engine's stored registry login (never a password on our command line).
    UNVERIFIED here: no registry is reachable from the development machines."""
    repository, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    for chunk in client.api.push(repository, tag=version or "latest", stream=True, decode=True):
        if "error" in chunk:
            raise UserError(f"docker push {tag} failed: {str(chunk['error']).strip()[:300]}")
        if chunk.get("status") and not chunk.get("progressDetail"):
            say(str(chunk["status"]))
