"""``w2s data prepare``: the label-free view of a labelled dataset (what ideas and agents may read)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from core.common.atomic import atomic_write_text
from core.data.check import check_path
from core.data.datasets import LABEL_FREE_SPLITS, label_free_row, load_split

LABELED_DIR = "labeled_data"


def _holds_labels(folder: Path) -> Path | None:
    """The first ``*.jsonl`` in ``folder`` whose rows carry a ``label`` (ground truth: never overwritten)."""
    for path in sorted(folder.glob("*.jsonl")):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError:
                        break
                    if isinstance(row, dict) and "label" in row:
                        return path
        except OSError:
            continue
    return None


def check_destination(dst_dir: Path, labeled_root: Path | None = None) -> None:
    """Refuse a destination that would destroy ground truth or is not a folder (ValueError, one line)."""
    resolved = dst_dir.resolve()
    inside_labeled = LABELED_DIR in dst_dir.parts or LABELED_DIR in resolved.parts
    if labeled_root is not None and resolved.is_relative_to(labeled_root.resolve()):
        inside_labeled = True
    if inside_labeled:
        raise ValueError(f"{dst_dir}: refused: the label-free view never goes into {LABELED_DIR}/ "
                         "(give a folder under data/, e.g. data/math)")
    if dst_dir.exists() and not dst_dir.is_dir():
        raise ValueError(f"{dst_dir}: is a file, not a folder; give a folder such as data/math")
    if dst_dir.is_dir():
        labelled = _holds_labels(dst_dir)
        if labelled is not None:
            raise ValueError(f"{dst_dir}: refused: {labelled.name} holds labels (ground truth is never "
                             "overwritten); give another folder")


def prepare_dataset(src_dir: Path, dst_dir: Path, labeled_root: Path | None = None) -> dict[str, int]:
    """Write the label-free view of ``src_dir`` into ``dst_dir``; returns rows written per split.

    ``train_label`` stays on the trusted side (weak-model outputs reach ideas through the results
    cache). The source is checked first and nothing is written if it has errors; a destination in
    ``labeled_data/`` (or ``labeled_root``) or holding labels is refused. The view is written into a
    temporary folder beside ``dst_dir`` and renamed into place, so nothing partial is ever seen.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise ValueError(f"{dst_dir}: destination must differ from the source")
    check_destination(dst_dir, labeled_root)
    errors = [p for p in check_path(src_dir) if p.severity == "error"]
    if errors:
        raise ValueError(str(errors[0]) + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))
    rendered: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name in LABEL_FREE_SPLITS:
        split = load_split(src_dir / f"{name}.jsonl")
        lines = [json.dumps(label_free_row(r, split.fmt), ensure_ascii=False) for r in split.rows]
        rendered[name] = "\n".join(lines) + "\n"
        counts[name] = len(lines)
    dst_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst_dir.name}.prepare-", dir=dst_dir.parent))
    old: Path | None = None
    try:
        if dst_dir.is_dir():  # other files in the folder travel with the new view
            for item in dst_dir.iterdir():
                if item.is_file() and item.name not in {f"{n}.jsonl" for n in rendered}:
                    shutil.copy2(item, tmp / item.name)
        for name, text in rendered.items():
            atomic_write_text(tmp / f"{name}.jsonl", text)
        if dst_dir.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{dst_dir.name}.old-", dir=dst_dir.parent))
            os.rename(dst_dir, old / dst_dir.name)
        os.rename(tmp, dst_dir)
    except BaseException:
        if old is not None and not dst_dir.exists() and (old / dst_dir.name).exists():
            os.rename(old / dst_dir.name, dst_dir)  # put the previous view back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return counts
