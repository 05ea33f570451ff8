"""``w2s verify``: rescore every kept prediction set through the referee's scoring and compare.

A seed the referee scored keeps its predictions beside its result
(``predictions_seed_<s>.json.gz``, see ``core.app.seed_job``). Rescoring them with
``core.referee.service.rescore`` must give back exactly the stored public and private accuracy (and
``transfer_acc`` is the private one). A row that does not, or a result that claims the referee's
source but has no predictions to show for it, is reported: it was edited or forged after scoring.
Results without a referee source (imported, older local runs) have nothing to rescore and are
counted as skipped; unverified (unsandboxed) results are rescored like the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.referee.service import RefereeError, rescore
from core.results.cache import BASELINE_PRODUCERS, iter_results, read_predictions, read_seed_files
from core.results.leaderboard import REFEREE_SOURCE, SOURCE_FIELD
from core.sandbox.base import UNVERIFIED_LABEL

CHECKED_SOURCES = (REFEREE_SOURCE, UNVERIFIED_LABEL)
FIELDS = (("public_acc", "public_acc"), ("private_acc", "private_acc"), ("transfer_acc", "private_acc"))


@dataclass
class Check:
    """One seed result and what rescoring its kept predictions said."""

    dataset: str
    idea: str
    key: str
    seed: int
    source: str
    status: str  # ok | mismatch | no predictions | unscorable | skipped
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return math.isclose(float(a), float(b), rel_tol=0.0, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def check_seed(dataset: str, idea: str, key: str, seed: int, stored: dict[str, Any]) -> Check:
    source = str(stored.get(SOURCE_FIELD) or "imported")
    check = Check(dataset, idea, key, seed, source, "ok")
    if source not in CHECKED_SOURCES:
        check.status, check.detail = "skipped", "not scored by the referee: nothing to rescore"
        return check
    preds = read_predictions(dataset, idea, key, seed)
    if preds is None:
        check.status, check.detail = "no predictions", "claims a referee score but kept no predictions"
        return check
    try:
        fresh = rescore(dataset, preds)
    except RefereeError as exc:
        check.status, check.detail = "unscorable", exc.message
        return check
    wrong = [f"{field} stored {stored.get(field)!r}, rescored {fresh[source_field]!r}"
             for field, source_field in FIELDS if not _same(stored.get(field), fresh[source_field])]
    if wrong:
        check.status, check.detail = "mismatch", "; ".join(wrong)
    return check


def verify_results(dataset: str | None = None, idea: str | None = None) -> list[Check]:
    """Every seed result of the filtered groups (baseline producers excluded), checked."""
    out: list[Check] = []
    seen: set[tuple[str, str, str]] = set()
    for item in iter_results(dataset=dataset):
        if item.idea in BASELINE_PRODUCERS or (idea is not None and item.idea != idea):
            continue
        group = (item.dataset, item.idea, item.key)
        if group in seen:
            continue
        seen.add(group)
        for seed, stored in read_seed_files(*group):
            out.append(check_seed(item.dataset, item.idea, item.key, seed, stored))
    return out
