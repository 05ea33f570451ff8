"""The referee names the first repeated row id when a submission lists one twice."""

from __future__ import annotations

import numpy as np
import pytest

from core.data.holdout import HoldoutLayout
from core.referee.errors import RefereeError
from core.referee.gold import Gold, positions_of


def small_gold(ids: tuple[str, ...]) -> Gold:
    return Gold(
        layout=HoldoutLayout("ds", ids, frozenset(ids), frozenset()),
        index={rid: i for i, rid in enumerate(ids)},
        labels=np.zeros(len(ids), dtype=np.int8),
        subset_codes=np.zeros(len(ids), dtype=np.int32),
        subset_names=("",),
        public_mask=np.ones(len(ids), dtype=bool),
    )


def test_distinct_ids_give_their_rows() -> None:
    gold = small_gold(("a", "b", "c"))
    assert positions_of(gold, [1, 0], ["c", "a"]).tolist() == [2, 0]


def test_the_first_id_that_repeats_is_named() -> None:
    gold = small_gold(("a", "b", "c"))
    with pytest.raises(RefereeError, match="id 'a' appears twice") as err:
        positions_of(gold, [1, 0, 1, 0], ["b", "a", "a", "b"])
    assert err.value.status == 400
