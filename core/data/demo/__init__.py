"""Offline demo datasets demo-chat, demo-math and demo-code, generated deterministically.

Why a generator and not hand-written files: the ground truth is computed (math by evaluating each
problem, code by running each snippet, chat by construction), the output is byte-for-byte the same
on every run, and the tasks are tuned so weak-to-strong generalization can show with the demo
models (a 1-layer MiniLM teacher, the full 6-layer MiniLM student; how far it does is measured in
bench/README.md, "Demo results"). ``generate_all`` writes the ground truth under
``labeled_data/demo-*`` and the label-free view under ``data/demo-*``.

Regenerate with ``uv run w2s data demo`` (``--out DIR`` for another workspace); the committed files
must equal the generator's output (tests/test_demo_data.py checks it byte for byte). The W2S
measurement script is ``bench/demo_data_probe.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.data.demo import chat, code, math
from core.data.demo.common import DEFAULT_SIZES, SPLIT_NAMES, split_words, write_jsonl
from core.data.demo.lexicon import load_lexicon

Generator = Callable[[str, int, list, set[str]], list[dict[str, Any]]]
FAMILIES: dict[str, Generator] = {
    "demo-chat": chat.generate_split,
    "demo-math": math.generate_split,
    "demo-code": code.generate_split,
}
DATASETS = tuple(FAMILIES)


def generate_dataset(name: str, sizes: Mapping[str, int] = DEFAULT_SIZES) -> dict[str, list[dict[str, Any]]]:
    """All three splits of one demo dataset, in memory (train_label first, so later splits avoid it)."""
    pools = split_words(load_lexicon())
    taken: set[str] = set()
    return {s: FAMILIES[name](s, int(sizes[s]), pools[s], taken) for s in SPLIT_NAMES}


def _label_free(src: Path, dst: Path) -> None:
    """Write the label-free view with the shared dataset code (the one ``w2s data prepare`` uses)."""
    from core.data.prepare import prepare_dataset

    prepare_dataset(src, dst)


def generate_all(
    root: Path, sizes: Mapping[str, int] = DEFAULT_SIZES, datasets: tuple[str, ...] = DATASETS
) -> dict[str, dict[str, int]]:
    """Write ``root/labeled_data/<ds>/`` (ground truth) and ``root/data/<ds>/`` (label-free).

    Returns rows written per dataset and split. Everything is generated before anything is
    written, so a failure (e.g. a snippet that will not run) leaves no partial dataset behind.
    """
    root = Path(root)
    unknown = [d for d in datasets if d not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown demo dataset(s): {', '.join(unknown)} (known: {', '.join(DATASETS)})")
    built = {name: generate_dataset(name, sizes) for name in datasets}
    counts: dict[str, dict[str, int]] = {}
    for name, splits in built.items():
        labeled = root / "labeled_data" / name
        for split, rows in splits.items():
            write_jsonl(labeled / f"{split}.jsonl", rows)
        _label_free(labeled, root / "data" / name)
        counts[name] = {split: len(rows) for split, rows in splits.items()}
    return counts
