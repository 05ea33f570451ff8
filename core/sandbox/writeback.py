"""A writable folder that went to a pod comes back: the pod's tarball replaces the local folder's contents.

Why a module of its own: the tarball is made by code on a machine w2s does not control (an agent's
shell ran there), so it is untrusted input to the trusted side. It is checked whole before anything
local changes: regular files and folders only (no link, hard link, device or fifo), relative names
that stay inside the folder, at most :data:`MAX_MEMBERS` entries and :data:`MAX_TOTAL_BYTES` unpacked.
It is unpacked into a fresh folder beside the target, and only then does the target's old content go
and the new content move in (renames on one filesystem), so a refused tarball leaves the folder as it was.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

MAX_TARBALL_BYTES = 64 << 20  # compressed, as fetched from S3 (the pod refuses to send more)
MAX_TOTAL_BYTES = 256 << 20  # unpacked
MAX_MEMBERS = 20_000


class WritebackRefused(Exception):
    """The pod's tarball is not a plain folder within the caps; the message says why (one line)."""


def _checked(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        if len(members) >= MAX_MEMBERS:
            raise WritebackRefused(f"more than {MAX_MEMBERS} entries")
        name = PurePosixPath(member.name)
        if name.is_absolute() or ".." in name.parts or not member.name.strip("./"):
            raise WritebackRefused(f"entry {member.name!r} escapes the folder")
        if not (member.isreg() or member.isdir()):
            raise WritebackRefused(f"entry {member.name!r} is not a regular file or folder")
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise WritebackRefused(f"more than {MAX_TOTAL_BYTES >> 20} MiB unpacked")
        members.append(member)
    return members


def _clear(folder: Path) -> None:
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def apply_writeback(data: bytes, folder: Path) -> int:
    """Replace ``folder``'s contents with the tarball ``data``; the number of entries. WritebackRefused
    (and ``folder`` untouched) when the tarball breaks a rule of the module docstring."""
    if len(data) > MAX_TARBALL_BYTES:
        raise WritebackRefused(f"the tarball is over {MAX_TARBALL_BYTES >> 20} MiB")
    if folder.is_symlink() or not folder.is_dir():
        raise WritebackRefused(f"{folder} is not a plain folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.writeback-", dir=folder.parent))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                members = _checked(tar)
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise WritebackRefused(f"the tarball could not be unpacked: {exc}") from None
        _clear(folder)
        for entry in staging.iterdir():
            os.rename(entry, folder / entry.name)
        return len(members)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
