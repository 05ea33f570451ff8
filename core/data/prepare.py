"""``w2s data prepare``: the label-free view of a labelled dataset (what ideas and agents may read)."""

from __future__ import annotations

import json
from pathlib import Path

from core.common.atomic import atomic_write_text
from core.data.check import check_path
from core.data.datasets import LABEL_FREE_SPLITS, label_free_row, load_split


def prepare_dataset(src_dir: Path, dst_dir: Path) -> dict[str, int]:
    """Write the label-free view of ``src_dir`` into ``dst_dir``; returns rows written per split.

    ``train_label`` stays on the trusted side (weak-model outputs reach ideas through the results
    cache). The source is checked first and nothing is written if it has errors; each output file
    is replaced atomically.
    """
    src_dir, dst_dir = Path(src_dir), Path(dst_dir)
    if src_dir.resolve() == dst_dir.resolve():
        raise ValueError(f"{dst_dir}: destination must differ from the source")
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
    for name, text in rendered.items():
        atomic_write_text(dst_dir / f"{name}.jsonl", text)
    return counts
