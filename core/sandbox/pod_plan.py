"""From a :class:`~core.sandbox.base.SandboxSpec` to what a pod does: which folders travel, at which paths.

Pure (no S3, no RunPod), so the mapping is tested on its own. A pod is a different machine: the
host's paths mean nothing there. The rules:

- the library code (``<repo>/core`` and anything mounted inside it, e.g. the empty folder that hides
  the demo generator) is the image's own, at ``code_dir`` (the production image has no demo
  generator); the repository root in ``PYTHONPATH`` becomes ``code_dir``;
- the spec's ``out`` folder (writable) becomes ``<workdir>/out`` on the pod, and the attach process copies
  what the pod leaves there back into it. One other writable mount (an agent's own idea folder, for its
  shell) travels like a read-only one and comes back: the pod tars it after the command and the attach
  process replaces the local folder's contents with it (:mod:`core.sandbox.writeback`). A second one
  is refused: a pod shares no folder with this machine;
- every other read-only mount (the staged inputs, the ideas folder, a workspace idea's folder)
  travels as a tarball and is unpacked at ``<workdir>/m<i>``, without the parts another mount
  covers; the Hugging Face model cache does not travel (the image brings its models);
- the command's interpreter becomes the image's (``python``), every host path in the command, the
  environment and the working folder is rewritten, and ``CUDA_VISIBLE_DEVICES`` is dropped (a pod's
  GPUs are its own, numbered from 0).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.sandbox.base import Mount, SandboxSpec, SandboxUnavailable

# a folder of its own on the pod: the stand-in mounts the host's Python at its host path, which may
# lie under /tmp (a checkout there), so a common prefix like /tmp/w2s could be a read-only parent
POD_WORKDIR = "/tmp/w2s-pod-run"
DROPPED_ENV = ("CUDA_VISIBLE_DEVICES", "HF_HUB_CACHE")
TOO_MANY_WRITABLE = "runpod: a pod can bring back one writable folder besides the output"


@dataclass(frozen=True)
class Upload:
    """One read-only folder that travels to the pod as a tarball."""

    name: str  # m<i>: the object's name and the folder on the pod
    source: Path
    pod_path: str
    exclude: tuple[str, ...] = ()


@dataclass
class PodPlan:
    """What the pod's bootstrap is told (plus, once uploaded, the URLs)."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    out: str  # the pod's output folder
    host_out: Path | None  # where the attach process copies it back to (None: the spec names no output)
    uploads: list[Upload] = field(default_factory=list)
    writeback: Upload | None = None  # the writable folder that travels both ways (also in ``uploads``)
    mapping: list[tuple[str, str]] = field(default_factory=list)  # host path -> pod path, longest first


def _under(path: Path, top: Path) -> bool:
    return path == top or path.is_relative_to(top)


def _library_path(inside: Path, repo: Path) -> str | None:
    """``inside`` relative to the repository when it lies in the library (``core/``), else None."""
    for root in (repo, repo.resolve()):
        if _under(inside, root / "core"):
            return str(inside.relative_to(root))
    return None


def _rewriter(mapping: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], Callable[[str], str]]:
    ordered = sorted(mapping, key=lambda pair: len(pair[0]), reverse=True)

    def one(text: str) -> str:
        for host, pod in ordered:
            if text == host:
                return pod
            if text.startswith(host.rstrip("/") + "/"):
                return pod + text[len(host.rstrip("/")):]
        return text

    def rewrite(value: str) -> str:
        if ":" in value and "://" not in value:
            return ":".join(one(part) for part in value.split(":"))
        return one(value)

    return ordered, rewrite


def build_plan(spec: SandboxSpec, repo: Path, *, python: str, code_dir: str, workdir: str = POD_WORKDIR) -> PodPlan:
    """The pod's side of ``spec`` (see the module docstring); SandboxUnavailable when it cannot run on a pod."""
    out_mount: Mount | None = None
    back_mount: Mount | None = None
    for mount in spec.mounts:
        if not mount.writable:
            continue
        if spec.out is not None and Path(mount.inside) == Path(spec.out) and out_mount is None:
            out_mount = mount
        elif back_mount is None:
            back_mount = mount
        else:
            raise SandboxUnavailable(f"{TOO_MANY_WRITABLE} (writable mounts {back_mount.inside}, {mount.inside})")
    if out_mount is None and back_mount is None:
        raise SandboxUnavailable("runpod: the run names no output folder to bring back")
    hub = spec.env.get("HF_HUB_CACHE")
    mapping: list[tuple[str, str]] = [(str(repo), code_dir), (str(repo.resolve()), code_dir)]
    if out_mount is not None:
        mapping.append((str(out_mount.inside), f"{workdir}/out"))
    uploads: list[Upload] = []
    travelling: list[tuple[Mount, str]] = []
    for i, mount in enumerate(spec.mounts):
        inside = Path(mount.inside)
        if mount is out_mount:
            continue
        in_library = _library_path(inside, repo)
        if in_library is not None:
            mapping.append((str(inside), f"{code_dir}/{in_library}"))
            continue
        if hub and str(inside) == hub:
            continue
        pod_path = f"{workdir}/m{i}"
        mapping.append((str(inside), pod_path))
        travelling.append((mount, pod_path))
    for mount, pod_path in travelling:
        inside = Path(mount.inside)
        covered = tuple(str(Path(other.inside).relative_to(inside)) for other in spec.mounts
                        if other is not mount and Path(other.inside) != inside and _under(Path(other.inside), inside))
        uploads.append(Upload(Path(pod_path).name, Path(mount.source), pod_path, covered))
    writeback = next((u for u, (m, _) in zip(uploads, travelling, strict=True) if m is back_mount), None)
    ordered, rewrite = _rewriter(mapping)
    host_pythons = {sys.executable, os.path.realpath(sys.executable)}
    command = [python if i == 0 and str(part) in host_pythons else rewrite(str(part))
               for i, part in enumerate(spec.command)]
    host_bin = str(Path(sys.executable).parent)
    env: dict[str, str] = {}
    for key, value in spec.env.items():
        if key in DROPPED_ENV:
            continue
        if key == "PATH":
            parts = [str(Path(python).parent) if p == host_bin else p for p in value.split(":")]
            env[key] = ":".join(dict.fromkeys(parts))
            continue
        env[key] = rewrite(str(value))
    return PodPlan(command=command, env=env, cwd=rewrite(str(spec.cwd)),
                   out=f"{workdir}/out", host_out=Path(out_mount.source) if out_mount else None, uploads=uploads,
                   mapping=ordered, writeback=writeback)
