"""The referee's rules in core: test split only, budget, holdout never scored, rounding, audit log."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from core.common.config import RunConfig
from core.control.store import Store
from core.control.tokens import issue_run_token
from core.data import holdout
from core.referee import service as referee
from core.results.cache import ceiling_key, read_result, weak_artifacts_key, write_result
from core.results.leaderboard import referee_accuracies
from tests.conftest import make_dataset as write_dataset

DATASET = "tiny"


def referee_rows(n: int = 400, seed: int = 0) -> list[dict]:
    """A binary test split with explicit ids, random labels and two subsets."""
    rng = random.Random(seed)
    return [
        {
            "id": f"r{i:04d}",
            "question": f"question {i}",
            "choice": f"choice {i}",
            "label": rng.random() < 0.5,
            "subset": "alpha" if i % 4 else "beta",
        }
        for i in range(n)
    ]


def scored_dataset(ws: Path, name: str = DATASET, n: int = 400, seed: int = 0) -> list[dict]:
    """A labelled test split (+ its label-free view) and cached baselines (weak 0.6, ceiling 0.8)."""
    rows = write_dataset(ws, name, {"test": referee_rows(n, seed)})["test"]
    cfg = RunConfig(data_dir=f"data/{name}")
    for seed_, (w, s) in enumerate([(0.58, 0.79), (0.62, 0.81)]):
        cache = ws / "cache_results"
        write_result(name, "weak_artifacts", weak_artifacts_key(cfg), 42 + seed_, {"weak_acc": w}, root=cache)
        write_result(name, "train_ceiling", ceiling_key(cfg), 42 + seed_, {"strong_acc": s}, root=cache)
    return rows


# tests/test_web_api.py still imports the old name; drop this once it imports scored_dataset.
make_dataset = scored_dataset


def gold(rows: list[dict]) -> dict[str, int]:
    return {r["id"]: int(r["label"]) for r in rows}


@pytest.fixture
def setup(workspace: Path):
    rows = scored_dataset(workspace)
    store = Store()
    token = issue_run_token(store, "run1", 20)
    return workspace, rows, store, token


def test_holdout_is_fixed_seeded_and_about_a_fifth():
    ids = [f"x{i}" for i in range(4000)]
    public, private = holdout.split_ids("ds", ids)
    assert 0.17 < len(private) / len(ids) < 0.23
    assert holdout.split_ids("ds", ids) == (public, private)
    other = holdout.split_ids("other", ids)[1]
    assert set(other) != set(private)


def test_evaluate_scores_public_part_rounded_and_logs(setup):
    ws, rows, store, token = setup
    truth = gold(rows)
    layout = holdout.layout(DATASET)
    assert layout is not None and len(layout.private) > 40
    preds = [truth[i] for i in layout.ids]
    for rid in layout.public_ordered[:37]:  # 37 wrong public rows
        preds[layout.ids.index(rid)] = 1 - truth[rid]
    out = referee.evaluate(store, token, DATASET, preds)
    exact = 1 - 37 / len(layout.public)
    assert out["accuracy"] == round(exact, 2)
    assert out["n_scored"] == len(layout.public)
    assert out["n_holdout_ignored"] == len(layout.private)
    assert out["budget"] == 20 and out["budget_left"] == 19
    assert out["weak_acc"] == pytest.approx(0.6) and out["strong_acc"] == pytest.approx(0.8)
    assert out["pgr"] == pytest.approx((out["accuracy"] - 0.6) / 0.2, abs=1e-4)
    assert set(out["per_subset"]) == {"alpha", "beta"}
    assert "label_distribution" not in json.dumps(out)
    logged = store.table("evaluations").all()
    assert len(logged) == 1 and logged[0]["run_id"] == "run1" and logged[0]["n"] == len(rows)
    assert logged[0]["status"] == 200 and logged[0]["result"]["accuracy"] == out["accuracy"]


def test_holdout_is_never_scored_for_a_run(setup):
    ws, rows, store, token = setup
    truth = gold(rows)
    layout = holdout.layout(DATASET)
    right_public = {i: (truth[i] if i in layout.public else 1 - truth[i]) for i in layout.ids}
    right_private = {i: (1 - truth[i] if i in layout.public else truth[i]) for i in layout.ids}
    a = referee.evaluate(store, token, DATASET, list(right_public.values()), list(right_public))
    b = referee.evaluate(store, token, DATASET, list(right_private.values()), list(right_private))
    assert a["accuracy"] == 1.0 and b["accuracy"] == 0.0
    # a call with holdout rows only is refused (nothing public to score) and costs nothing
    priv = layout.private_ordered
    with pytest.raises(referee.RefereeError) as err:
        referee.evaluate(store, token, DATASET, [truth[i] for i in priv], priv)
    assert err.value.status == 400
    again = referee.evaluate(store, token, DATASET, list(right_public.values()), list(right_public))
    assert again["budget_left"] == 17


def test_refusals(setup):
    ws, rows, store, token = setup
    n = len(rows)
    cases = [
        (dict(token="nope", dataset=DATASET, predictions=[0] * n), 401),
        (dict(token=None, dataset=DATASET, predictions=[0] * n), 401),
        (dict(token=token, dataset=DATASET, predictions=[0] * n, split="train_unlabel"), 400),
        (dict(token=token, dataset=DATASET, predictions=[0] * (n - 1)), 400),
        (dict(token=token, dataset="../etc", predictions=[0] * n), 400),
        (dict(token=token, dataset="nosuch", predictions=[0] * n), 400),
        (dict(token=token, dataset=DATASET, predictions=[0, 1], ids=["r0000", "zzz"]), 400),
        (dict(token=token, dataset=DATASET, predictions=[0, 1], ids=["r0000", "r0000"]), 400),
        (dict(token=token, dataset=DATASET, predictions=[2] * n), 400),
        (dict(token=token, dataset=DATASET, predictions="0101"), 400),
    ]
    for kwargs, status in cases:
        token_ = kwargs.pop("token")
        with pytest.raises(referee.RefereeError) as err:
            referee.evaluate(store, token_, **kwargs)
        assert err.value.status == status, (kwargs, err.value.message)
        assert "True" not in err.value.message and "False" not in err.value.message
    # none of the refused calls cost budget; 20 good ones do, the 21st is 429
    for i in range(20):
        assert referee.evaluate(store, token, DATASET, [0] * n)["budget_left"] == 19 - i
    with pytest.raises(referee.RefereeError) as err:
        referee.evaluate(store, token, DATASET, [0] * n)
    assert err.value.status == 429 and "budget" in err.value.message
    statuses = [d["status"] for d in store.table("evaluations").all()]
    assert statuses.count(200) == 20 and statuses.count(429) == 1


def test_final_score_writes_referee_row_once(setup):
    ws, rows, store, token = setup
    truth = gold(rows)
    layout = holdout.layout(DATASET)
    preds = {i: float(truth[i]) for i in layout.ids}
    wrong = layout.private_ordered[:10]
    for i in wrong:
        preds[i] = 1.0 - preds[i]
    meta = {"idea": "my_idea", "config": {"data_dir": "data/tiny"}}
    store.table("jobs").insert({"id": "run1", "meta": meta})
    out = referee.final_score(store, "run1", DATASET, preds)
    assert out["public_acc"] == 1.0
    assert out["private_acc"] == pytest.approx(1 - 10 / len(layout.private))
    assert out["transfer_acc"] == out["private_acc"] and out["w2s_source"] == "referee"
    stored = read_result(DATASET, "my_idea", out["hyperparam_config_key"], out["seed"])
    assert stored is not None and stored["n_private"] == len(layout.private)
    assert "label_distribution" not in json.dumps(stored)
    with pytest.raises(referee.RefereeError) as err:
        referee.final_score(store, "run1", DATASET, preds)
    assert err.value.status == 409
    from core.results.leaderboard import leaderboard_rows

    rows_ = [r for r in leaderboard_rows(DATASET) if r["idea"] == "my_idea"]
    assert rows_ and rows_[0]["source"] == "referee"
    assert referee_accuracies(DATASET, "my_idea", rows_[0]["key"])["public_acc"] == 1.0


def test_quantize():
    assert referee.quantize(0.61649) == 0.62
    assert referee.quantize(0.005) in (0.0, 0.01)
    assert referee.quantize(None) is None


def test_fast_scorer_matches_core_scoring(setup):
    """The referee's vectorised scorer gives exactly what core.results.scoring computes."""
    from core.results.scoring import score_predictions

    ws, rows, store, token = setup
    gold_ = referee.gold_for(DATASET)
    rng = random.Random(3)
    for kind in ("float", "mixed", "subset"):
        ids = list(gold_.layout.ids)
        if kind == "subset":
            ids = rng.sample(ids, 250)
        if kind == "mixed":
            preds = [rng.choice([True, False, 0, 1, 0.2, 0.7, 0.5]) for _ in ids]
        else:
            preds = [rng.random() for _ in ids]
        pos = referee.positions_of(gold_, preds, ids)
        fast = referee.score_public(gold_, pos, referee.classes_of(preds))
        public = [i for i in ids if i in gold_.layout.public]
        slow = score_predictions(DATASET, dict(zip(ids, preds, strict=True)), "test", public)
        assert fast["accuracy"] == pytest.approx(slow["accuracy"]) and fast["total"] == slow["total"]
        assert fast["pred_distribution"] == slow["pred_distribution"]
        for name, block in slow["per_subset"].items():
            assert fast["per_subset"][name]["accuracy"] == pytest.approx(block["accuracy"])
    with pytest.raises(referee.RefereeError, match=r"predictions\[1\]"):
        referee.classes_of([0.1, float("nan"), 0.3])


def test_retried_run_keeps_its_spent_budget(setup):
    """Re-issuing a run's token (a retry) rotates it; charges stay with the run, not the token."""
    ws, rows, store, token = setup
    n = len(rows)
    for _ in range(3):
        referee.evaluate(store, token, DATASET, [0] * n)
    fresh = issue_run_token(store, "run1", 20)
    with pytest.raises(referee.RefereeError) as err:
        referee.evaluate(store, token, DATASET, [0] * n)
    assert err.value.status == 401
    assert referee.evaluate(store, fresh, DATASET, [0] * n)["budget_left"] == 16
    # a second process (another Store object on the same folder) sees the same count
    assert referee.evaluate(Store(), fresh, DATASET, [0] * n)["budget_left"] == 15


def test_holdout_keeps_consistency_groups_together():
    rows = [{"id": f"q{q}-c{c}", "consistency_id": f"q{q}"} for q in range(300) for c in range(3)]
    rows += [{"id": f"solo{i}"} for i in range(300)]
    public, private = holdout.split_rows("ds", rows)
    side = {rid: rid in set(private) for rid in public + private}
    for q in range(300):
        assert len({side[f"q{q}-c{c}"] for c in range(3)}) == 1
    assert 0.12 < len(private) / len(rows) < 0.28


def test_racing_final_submissions_score_once(setup):
    import threading

    ws, rows, store, token = setup
    truth = gold(rows)
    store.table("jobs").insert({"id": "run1", "meta": {"idea": "race_idea"}})
    preds = {i: truth[i] for i in holdout.layout(DATASET).ids}
    outcomes: list[object] = []

    def submit() -> None:
        try:
            outcomes.append(referee.final_score(Store(), "run1", DATASET, preds)["private_acc"])
        except referee.RefereeError as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == [1.0, 409, 409, 409]


def test_final_score_records_the_runners_judge_counts(setup):
    """What the trusted runner counted of a run's weak-judge use reaches the seed file and the row;
    a run without a judge has neither."""
    ws, rows, store, token = setup
    truth = gold(rows)
    layout = holdout.layout(DATASET)
    preds = {i: float(truth[i]) for i in layout.ids}
    for run_id, idea, calls in (("runj", "judged", {"judges": 1, "texts": 120, "requests": 9, "refused": 0}),
                                ("runp", "plain", None)):
        store.table("jobs").insert({"id": run_id, "meta": {"idea": idea, "config": {"data_dir": "data/tiny"}}})
        out = referee.final_score(store, run_id, DATASET, preds, judge_calls=calls)
        stored = read_result(DATASET, idea, out["hyperparam_config_key"], out["seed"])
        assert stored.get("judge_calls") == calls
    from core.results.leaderboard import leaderboard_rows

    by_idea = {r["idea"]: r for r in leaderboard_rows(DATASET)}
    assert by_idea["judged"]["judge_texts"] == 120
    assert by_idea["plain"]["judge_texts"] is None
