"""Import and export results-cache archives (``.tar.gz``) safely.

An archive is untrusted input: every member is checked *before* anything is written, and one
absolute path, ``..`` component, link or device refuses the whole archive. Files are read from
the tar stream and written by us (atomic, one at a time), never via ``extractall``, so nothing
outside ``cache_results/<dataset>_<idea>/<key>/seed_<n>.json`` (and the gzipped predictions kept beside a
referee-scored seed, ``predictions_seed_<n>.json.gz``) can ever be created.
The reference archive's quirks are tolerated and reported: its stale nested
``cache_results/cache_results/`` copy is skipped, empty folders are not recreated, null ``pgr``
and foreign ``idea_name`` values are imported unchanged (the folder names decide).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import orjson

import core
from core.common.atomic import atomic_write_bytes
from core.common.errors import UserError
from core.results.cache import cache_root, iter_results

log = logging.getLogger(__name__)

TOP = "cache_results"
DEMO_ARCHIVE = Path(core.__file__).resolve().parent.parent / "cache_results.tar.gz"
# Caps checked from the headers before anything is written (a results cache is hundreds of files,
# megabytes in all): archive bombs are refused whole, and no member is ever held whole past its cap.
MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 32 * 1024 * 1024  # any file member (a gzipped predictions file is the largest kind)
MAX_SEED_BYTES = 16 * 1024 * 1024  # a seed result is kilobytes; weak artifacts with per-row outputs, megabytes
MAX_TOTAL_BYTES = 512 * 1024 * 1024
_GROUP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*_[A-Za-z0-9][A-Za-z0-9_.-]*$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_SEED_RE = re.compile(r"^seed_-?\d+\.json$")
_PREDICTIONS_RE = re.compile(r"^predictions_seed_-?\d+\.json\.gz$")  # kept beside referee-scored seeds
MAX_PREDICTIONS_BYTES = 64 * 1024 * 1024  # unzipped: a gzip member is checked before it is written


class ArchiveError(UserError):
    """The archive is unreadable or unsafe; nothing was written."""


@dataclass
class ImportReport:
    archive: str
    imported: Counter = field(default_factory=Counter)  # (dataset, idea) -> files written
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    nested_skipped: int = 0
    empty_dirs: int = 0
    null_pgr: int = 0
    foreign_idea: int = 0

    @property
    def n_imported(self) -> int:
        return sum(self.imported.values())

    def summary_lines(self) -> list[str]:
        """What ``w2s cache import`` prints: counts per dataset/idea, then everything skipped."""
        lines = [f"imported {self.n_imported} files from {self.archive} ({self.unchanged} already present)"]
        for (ds, idea), n in sorted(self.imported.items()):
            lines.append(f"  {ds:<12} {idea:<40} {n:>4}")
        if self.nested_skipped:
            lines.append(f"skipped the stale nested tree {TOP}/{TOP}/ ({self.nested_skipped} files)")
        if self.empty_dirs:
            lines.append(f"ignored {self.empty_dirs} empty folders")
        if self.null_pgr:
            lines.append(f"{self.null_pgr} files have a null pgr (the leaderboard recomputes it)")
        if self.foreign_idea:
            lines.append(f"{self.foreign_idea} files carry another idea_name (their folder decides)")
        for path in self.conflicts:
            lines.append(f"kept existing {path}: content differs (use --overwrite to replace)")
        for name, reason in self.skipped:
            lines.append(f"skipped {name}: {reason}")
        return lines


@dataclass(frozen=True)
class _Entry:
    member: str
    group: str
    key: str
    filename: str
    data: bytes
    null_pgr: bool
    idea_name: object  # only what the report needs: the parsed file is dropped at once


def _unsafe(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if "\0" in name:
        return "NUL in name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "'..' in path"
    if member.issym() or member.islnk():
        return "link"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "device or fifo"
    if not (member.isfile() or member.isdir()):
        return "unsupported member type"
    if member.isfile() and member.size > MAX_MEMBER_BYTES:
        return f"larger than {MAX_MEMBER_BYTES} bytes"
    return None


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))


def _refuse(archive: Path, why: str) -> ArchiveError:
    return ArchiveError(f"{archive}: refused: {why}; nothing was written")


def _members(tf: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """Every member header, read one at a time and checked as it comes: the count, each member's
    safety and size and the running total stop the read at once, before any data is kept."""
    members: list[tarfile.TarInfo] = []
    total = 0
    while (m := tf.next()) is not None:
        if len(members) >= MAX_MEMBERS:
            raise _refuse(archive, f"more than {MAX_MEMBERS} members (a results cache has hundreds)")
        why = _unsafe(m)
        if why is not None:
            raise _refuse(archive, f"member {m.name[:200]!r}: {why}")
        if m.isfile():
            total += m.size
            if total > MAX_TOTAL_BYTES:
                raise _refuse(archive, f"more than {MAX_TOTAL_BYTES} bytes unpacked")
        members.append(m)
    return members


def _scan(archive: Path, report: ImportReport) -> list[_Entry]:
    """Validate every member, then read the cache files; raises ArchiveError before any write."""
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{archive}: not a readable tar archive ({exc})") from None
    with tf:
        try:
            members = _members(tf, archive)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{archive}: corrupt archive ({exc}); nothing was written") from None
        prefixes = {p[:i] for m in members for p in [_parts(m.name)] for i in range(1, len(p))}
        report.empty_dirs += sum(1 for m in members if m.isdir() and _parts(m.name)
                                 and _parts(m.name) not in prefixes)
        entries = []
        try:
            for m in members:
                if m.isfile():
                    entry = _entry(tf, m, report)
                    if entry is not None:
                        entries.append(entry)
        except ArchiveError as exc:
            raise ArchiveError(f"{archive}: refused: {exc}") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ArchiveError(f"{archive}: corrupt archive ({exc}); nothing was written") from None
    return entries


def _read_capped(tf: tarfile.TarFile, m: tarfile.TarInfo, cap: int) -> bytes:
    """A member's bytes, never more than ``cap`` (the header's size is checked first, this is the backstop)."""
    fh = tf.extractfile(m)
    data = fh.read(cap + 1) if fh is not None else b""
    if len(data) > cap:
        raise ArchiveError(f"member {m.name[:200]!r}: larger than {cap} bytes; nothing was written")
    return data


def _entry(tf: tarfile.TarFile, m: tarfile.TarInfo, report: ImportReport) -> _Entry | None:
    parts = _parts(m.name)
    if parts and parts[0] == TOP:
        parts = parts[1:]
    if parts and parts[0] == TOP:
        report.nested_skipped += 1
        return None
    if len(parts) != 3:
        report.skipped.append((m.name, "not <dataset>_<idea>/<key>/seed_<n>.json"))
        return None
    group, key, filename = parts
    if _GROUP_RE.match(group) and _KEY_RE.match(key) and _PREDICTIONS_RE.match(filename):
        return _predictions_entry(tf, m, group, key, filename, report)
    if not _GROUP_RE.match(group) or not _KEY_RE.match(key) or not _SEED_RE.match(filename):
        report.skipped.append((m.name, "not <dataset>_<idea>/<key>/seed_<n>.json"))
        return None
    if m.size > MAX_SEED_BYTES:
        raise ArchiveError(f"member {m.name[:200]!r}: {m.size} bytes, a seed result is at most {MAX_SEED_BYTES}; "
                           "nothing was written")
    data = _read_capped(tf, m, MAX_SEED_BYTES)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        try:  # BOM, NaN: the stdlib parser is more lenient
            parsed = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError):
            report.skipped.append((m.name, "invalid JSON"))
            return None
    if not isinstance(parsed, dict):
        report.skipped.append((m.name, "not a JSON object"))
        return None
    null_pgr = "pgr" in parsed and parsed["pgr"] is None
    return _Entry(m.name, group, key, filename, data, null_pgr, parsed.get("idea_name"))


def _predictions_entry(tf: tarfile.TarFile, m: tarfile.TarInfo, group: str, key: str, filename: str,
                       report: ImportReport) -> _Entry | None:
    """A kept-predictions file: stored as it is (gzip), after checking it unzips, within a size cap,
    to a JSON object (so ``w2s verify`` can rescore the seed it belongs to)."""
    data = _read_capped(tf, m, MAX_MEMBER_BYTES)
    inflate = zlib.decompressobj(wbits=31)
    try:
        raw = inflate.decompress(data, MAX_PREDICTIONS_BYTES + 1)
        complete = inflate.eof
    except zlib.error:
        report.skipped.append((m.name, "not a gzip file"))
        return None
    if len(raw) > MAX_PREDICTIONS_BYTES or not complete:
        report.skipped.append((m.name, f"unzips to more than {MAX_PREDICTIONS_BYTES} bytes"))
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        report.skipped.append((m.name, "not gzipped JSON predictions {id: P(class 1)}"))
        return None
    return _Entry(m.name, group, key, filename, data, False, None)


def import_archive(archive: Path, root: Path | None = None, overwrite: bool = False) -> ImportReport:
    """Copy an archive's seed files into the cache. Idempotent: identical files are left alone;
    a file whose content differs is kept unless ``overwrite``."""
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such file" if not archive.exists() else f"{archive}: not a file")
    report = ImportReport(str(archive))
    entries = _scan(archive, report)
    base = cache_root(root)
    for e in entries:
        ds, idea = e.group.split("_", 1)
        report.null_pgr += e.null_pgr
        if e.idea_name not in (None, idea):
            report.foreign_idea += 1
        dest = base / e.group / e.key / e.filename
        if dest.is_file():
            if dest.read_bytes() == e.data:
                report.unchanged += 1
                continue
            if not overwrite:
                report.conflicts.append(f"{e.group}/{e.key}/{e.filename}")
                continue
        atomic_write_bytes(dest, e.data)
        report.imported[(ds, idea)] += 1
    return report


def export_archive(archive: Path, dataset: str | None = None, root: Path | None = None) -> int:
    """Write the cache (or one dataset of it) as ``cache_results/...`` in a .tar.gz; returns the
    file count. The archive appears atomically; owner names are not recorded."""
    archive = Path(archive)
    if archive.is_dir():
        raise UserError(f"{archive}: is a folder; give the archive's file name")
    results = list(iter_results(root, dataset))
    if not results:
        where = f"dataset {dataset!r}" if dataset else "the cache"
        raise UserError(f"nothing to export: no cached results for {where} in {cache_root(root)}")
    archive.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".tmp", dir=archive.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tf:
                for r in results:
                    kept = r.path.with_name(f"predictions_{r.path.name}.gz")
                    for path in (r.path, kept) if kept.is_file() else (r.path,):
                        info = tarfile.TarInfo(f"{TOP}/{r.path.parent.parent.name}/{r.key}/{path.name}")
                        data = path.read_bytes()
                        info.size = len(data)
                        info.mtime = int(path.stat().st_mtime)
                        info.mode = 0o644
                        tf.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(results)


def ensure_demo_cache(root: Path | None = None, archive: Path | None = None) -> bool:
    """Unpack the repo's demo archive when the workspace has no cache yet, so a fresh workspace
    shows a populated leaderboard. True when it unpacked. ``root`` is the cache folder (default:
    the workspace's ``cache_results/``). Safe against a concurrent caller: the cache folder
    appears in one rename. A bad archive is logged, never raised (callers are UIs)."""
    base = cache_root(root)
    archive = Path(archive) if archive is not None else DEMO_ARCHIVE
    if base.exists() or not archive.is_file():
        return False
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}.import-", dir=base.parent))
    try:
        import_archive(archive, root=tmp)
        os.rename(tmp, base)
        return True
    except ArchiveError as exc:
        log.warning("demo cache not unpacked: %s", exc)
        return False
    except OSError:
        return False  # another process created the cache first
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
