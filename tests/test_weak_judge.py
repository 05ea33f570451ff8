"""The trusted weak-judge service: an idea trains a judge on train_label through the real bwrap sandbox
and the file channel, gets predictions only, and is refused what it may not ask; the judge really
learns from ground truth; the counts reach the run's result. Data: a cut of ``demo-math`` (32
train_label rows, train_size/test_size cuts), the demo weak model, fake cached baselines."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.app.seed_job import run_seed
from core.common.config import RunConfig
from core.common.errors import UserError
from core.data.datasets import load_split
from core.run import experiment, judge_client, judge_service
from core.run.ideas import check_idea
from core.run.judge_service import JudgeService
from core.run.resolve import prepare_config
from core.run.runner import REMOTE_SANDBOXES, REPLIES_DIR, sandbox_spec
from core.sandbox.bwrap import BwrapSandbox
from core.sandbox.runpod import RunPodSandbox
from tests.conftest import REPO, in_ci
from tests.tiny_w2s import fake_baselines

TRAIN_LABEL_ROWS = 32
REPLY_KEYS = {"ok", "judge", "probs", "texts_left", "error"}


def _row_ids(cfg):
    data = experiment.read_label_free(experiment.resolve_data_dir(cfg.data_dir), cfg)
    return data.train_ids + data.test_ids


def demo_math_cut(ws: Path) -> RunConfig:
    """``demo-math`` in the workspace, train_label cut to 32 rows; the other splits are cut by the config."""
    for sub in ("data", "labeled_data"):
        folder = ws / sub / "demo-math"
        folder.mkdir(parents=True)
        for src in (REPO / sub / "demo-math").glob("*.jsonl"):
            lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
            keep = lines[:TRAIN_LABEL_ROWS] if src.name == "train_label.jsonl" else lines
            (folder / src.name).write_text("".join(keep), encoding="utf-8")
    cfg = prepare_config(RunConfig(data_dir="data/demo-math", weak_model="demo-weak", strong_model="demo-strong",
                                   seed=42, train_size=12, test_size=8), defaults={})
    fake_baselines(ws, cfg, [42])
    return cfg


def labels_of(ws: Path, split: str) -> dict[str, int]:
    loaded = load_split(ws / "labeled_data" / "demo-math" / f"{split}.jsonl")
    return dict(zip(loaded.ids, loaded.labels(), strict=True))


JUDGE_IDEA = '''
import json, os, time
from pathlib import Path
from core.common.errors import UserError
from core.run import experiment


def refused(fn):
    try:
        fn()
    except UserError as exc:
        return str(exc)
    return None


def raw_request(name, data):
    """A request written by hand (what a careless idea could write), then its reply."""
    folder = Path(os.environ["W2S_JUDGE_REQUESTS"])
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    os.rename(tmp, folder / f"req-{name}.json")
    reply = Path(os.environ["W2S_JUDGE_REPLIES"]) / f"reply-{name}.json"
    for _ in range(600):
        if reply.exists():
            return json.loads(reply.read_text())
        time.sleep(0.05)
    return None


def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    tl = experiment.load_train_label_free(cfg)
    notes = {"staged_train_label": len(tl), "label_fields": sorted({k for r in tl for k in r} & {"label", "answer", "subset", "difficulty"})}
    train_texts = {r["id"]: r["choice"] for r in tl}
    notes["train_test_id"] = refused(lambda: experiment.train_weak_judge(cfg, {data.test[0]["id"]: "x", **train_texts}))
    notes["train_unlabel_id"] = refused(lambda: experiment.train_weak_judge(cfg, {**train_texts, data.train[0]["id"]: "x"}))
    notes["too_few"] = refused(lambda: experiment.train_weak_judge(cfg, dict(list(train_texts.items())[:5])))
    judge = experiment.train_weak_judge(cfg, train_texts)
    asked = {r["id"]: r["choice"] for r in data.train + data.test}
    asked.update({r["id"] + "#other": "The card read nothing at all." for r in data.test})
    probs = judge.predict(asked)
    notes["asked"] = sorted(asked)
    notes["probs"] = probs
    notes["predict_train_label"] = refused(lambda: judge.predict({tl[0]["id"]: "x"}))
    notes["predict_unknown"] = refused(lambda: judge.predict({"nope": "x"}))
    notes["too_long"] = refused(lambda: judge.predict({data.test[0]["id"]: "x" * 8001}))
    notes["over_budget"] = refused(lambda: judge.predict({data.test[0]["id"] + f"#{i}": "x" for i in range(judge.texts_left + 1)}))
    notes["malformed"] = raw_request("bad", b"{not json")
    notes["no_op"] = raw_request("noop", b'{"texts": {}}')
    os.symlink("/etc/hostname", Path(os.environ["W2S_JUDGE_REQUESTS"]) / "req-evil.json")
    notes["after_link"] = judge.predict({data.test[0]["id"]: "The card read nothing."})
    time.sleep(1.0)  # many polls of the runner
    notes["link_answered"] = (Path(os.environ["W2S_JUDGE_REPLIES"]) / "reply-evil.json").exists()
    return {"test_predictions": {r["id"]: probs[r["id"]] for r in data.test}, "judge_notes": notes}
'''


def test_an_idea_trains_a_judge_through_the_bwrap_sandbox(workspace: Path) -> None:
    problem = BwrapSandbox().problem()
    if problem:
        if in_ci():
            pytest.fail(f"bwrap must work in CI: {problem}", pytrace=False)
        pytest.skip(f"bwrap does not work here: {problem}")
    cfg = demo_math_cut(workspace)
    folder = workspace / "ideas" / "judged"
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(JUDGE_IDEA)
    run_dir = workspace / "runs" / "judged-1"
    lines: list[str] = []
    result = run_seed("judged", cfg, log=lines.append, run_id="judged-1", run_dir=run_dir, sandbox=BwrapSandbox())
    notes = json.loads((run_dir / "idea_out" / "idea_output.json").read_text())["judge_notes"]

    # what the idea saw: train_label rows without labels, and probabilities that differ between texts
    assert notes["staged_train_label"] == TRAIN_LABEL_ROWS and notes["label_fields"] == []
    probs = notes["probs"]
    assert sorted(probs) == notes["asked"] and len(probs) == 12 + 8 + 8
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert len({round(p, 4) for p in probs.values()}) > 5
    assert 0.0 <= notes["after_link"][next(iter(notes["after_link"]))] <= 1.0

    # refused, each with its reason
    assert "is a train_unlabel or test id" in notes["train_test_id"]
    assert "is a train_unlabel or test id" in notes["train_unlabel_id"]
    assert "at least 16" in notes["too_few"]
    assert "is a train_label row" in notes["predict_train_label"]
    assert "not a train_unlabel or test id" in notes["predict_unknown"]
    assert "at most 8000" in notes["too_long"]
    assert "text budget spent" in notes["over_budget"]
    assert notes["malformed"] == {"ok": False, "error": "malformed request: not JSON (write it to a temp file, "
                                  "then rename)"}
    assert notes["no_op"]["ok"] is False and "'op'" in notes["no_op"]["error"]
    assert notes["link_answered"] is False  # a link is never read, never answered
    assert any("ignored 'req-evil.json'" in ln for ln in lines)

    # no label, accuracy or label count in any reply: ids, probabilities and one-line refusals only
    replies = sorted((run_dir / REPLIES_DIR).glob("reply-*.json"))
    assert len(replies) == 12
    for path in replies:
        doc = json.loads(path.read_text())
        assert set(doc) <= REPLY_KEYS and isinstance(doc["ok"], bool)
        if "probs" in doc:
            assert all(isinstance(v, float) for v in doc["probs"].values())
        if "error" in doc:
            assert "acc" not in doc["error"].lower() and "\n" not in doc["error"]
        for field in ("judge", "texts_left"):
            assert field not in doc or isinstance(doc[field], (str, int))

    # the counts reach the run's result (and the log), budgets are the trusted side's
    budget = judge_service.TEXTS_PER_ROW * (12 + 8)
    assert result["judge_calls"] == {"judges": 1, "texts": len(probs) + 1, "requests": 12, "refused": 9}
    assert budget - result["judge_calls"]["texts"] >= 0
    assert any("weak judge: 1 judges trained" in ln for ln in lines)
    assert list((run_dir / "idea_out" / "judge").iterdir()) == [run_dir / "idea_out" / "judge" / "req-evil.json"]


def test_the_judge_learns_from_ground_truth_and_its_budget_holds(workspace: Path) -> None:
    """Texts that carry the label (built here, on the trusted side): a judge trained on the real labels
    tracks them on rows it never saw. Direct mode: the same service, in this process."""
    cfg = demo_math_cut(workspace)
    said = {1: "Verdict: the answer is right.", 0: "Verdict: the answer is wrong."}
    train = labels_of(workspace, "train_label")
    # keys '<train_label id>#<suffix>' carry their row's label (the critic's judge sees each row twice)
    judge = experiment.train_weak_judge(cfg, {f"{rid}#v": said[y] for rid, y in train.items()})
    data = experiment.load_label_free(cfg)
    truth = {**labels_of(workspace, "train_unlabel"), **labels_of(workspace, "test")}
    unseen = [r["id"] for r in data.train + data.test]
    probs = judge.predict({rid: said[truth[rid]] for rid in unseen})
    y = np.array([truth[rid] for rid in unseen])
    p = np.array([probs[rid] for rid in unseen])
    assert 0 < y.sum() < len(y)
    # confident and right on every unseen row: labels that agreed with the texts only in part (a
    # shuffle keeping 24 of 32) gave 0.66 / 0.37 here, ground truth 0.997 / 0.001
    assert float(np.abs(p - y).max()) < 0.2, (p, y)

    # the trusted side's budgets: a service allowing one judge refuses the second
    service = JudgeService.for_run(cfg, _row_ids(cfg), print)
    service.max_judges = 1
    texts = {rid: said[y] for rid, y in train.items()}
    first = next(iter(texts))
    crowded = service.handle({"op": "train", "texts": {**texts, **{f"{first}#{i}": "x" for i in range(4)}}})
    assert crowded == {"ok": False, "error": f"train: 5 texts of row {first!r}; at most 4 per train_label row"}
    few_rows = {f"{rid}#{i}": "x" for rid in list(texts)[:4] for i in range(4)}  # 16 texts, 4 rows
    assert service.handle({"op": "train", "texts": few_rows}) == {
        "ok": False, "error": "train: 4 train_label rows; a judge needs at least 16"}
    test_row = f"{data.test[0]['id']}#bare"
    refused = service.handle({"op": "train", "texts": {**texts, test_row: "x"}})
    assert refused["ok"] is False and f"{test_row!r} is a train_unlabel or test id" in refused["error"]
    assert service.handle({"op": "train", "texts": texts})["ok"] is True
    second = service.handle({"op": "train", "texts": texts})
    assert second == {"ok": False, "error": "judge budget spent: at most 1 judges per run"}
    assert service.counts.as_dict() == {"judges": 1, "texts": 0, "requests": 5, "refused": 4}


def test_a_reply_that_never_comes_is_a_clear_error(tmp_path: Path) -> None:
    requests, replies = tmp_path / "judge", tmp_path / "replies"
    replies.mkdir()
    transport = judge_client.FileTransport(requests, replies, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(UserError, match=r"no reply to request .* within 0.3 s"):
        judge_client.train({"a": "x"}, transport)
    assert time.monotonic() - start < 5
    (written,) = requests.glob("req-*.json")  # the request itself went out whole
    assert json.loads(written.read_text()) == {"op": "train", "texts": {"a": "x"}}


def test_the_runpod_sandbox_has_no_judge_and_says_so(workspace: Path) -> None:
    """A pod shares no folder with the runner: the spec carries the reason, and an idea's client fails
    with that one line at once instead of waiting."""
    cfg = demo_math_cut(workspace)
    inputs, out, empty = workspace / "in", workspace / "out", workspace / "empty"
    for p in (inputs, out, empty):
        p.mkdir()
    (inputs / experiment.CONFIG_FILE).write_text(cfg.to_json())
    info, _ = check_idea("vanilla_w2s")
    spec = sandbox_spec(info, inputs, out, empty, None, REMOTE_SANDBOXES[RunPodSandbox.name])
    assert judge_client.REPLIES_ENV not in spec.env and judge_client.REQUESTS_ENV not in spec.env
    code = ("from core.common.config import RunConfig\nfrom core.run import experiment\nimport json, os\n"
            "cfg = RunConfig.from_dict(json.loads(open(os.environ['W2S_IDEA_INPUTS'] + '/config.json').read()))\n"
            "experiment.train_weak_judge(cfg, {'a': 'x'})\n")
    env: dict[str, Any] = {**spec.env, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "UserError: weak judge: the weak judge service is not available in the runpod sandbox")
    assert not (out / judge_client.REQUESTS_DIR).exists()


def test_a_causal_weak_model_judges_through_its_label_tokens(workspace: Path) -> None:
    """A causal weak model (a 2-layer Llama with random weights, built from a config) trains and
    scores raw texts through the engine's label-token path (``Label:`` then False / True)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core.engine.hf_backend import CausalLabelScorer
    from core.engine.models import minilm_path

    demo_math_cut(workspace)
    folder = workspace / "tiny-llama"
    tok = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = prepare_config(RunConfig(data_dir="data/demo-math", weak_model=str(folder), strong_model=str(folder),
                                   seed=42, train_size=12, test_size=8, max_ctx=96), defaults={})
    service = JudgeService.for_run(cfg, _row_ids(cfg), print)
    said = {1: "Verdict: the answer is right.", 0: "Verdict: the answer is wrong."}
    train = labels_of(workspace, "train_label")
    reply = service.handle({"op": "train", "texts": {rid: f"{rid}: {said[y]}" for rid, y in train.items()}})
    assert reply == {"ok": True, "judge": "judge-1"}
    assert isinstance(service._judges["judge-1"].module, CausalLabelScorer)
    data = experiment.load_label_free(cfg)
    asked = {r["id"]: f"{r['id']}: {r['choice']}" for r in data.test}
    got = service.handle({"op": "predict", "judge": "judge-1", "texts": asked})
    assert got["ok"] is True and sorted(got["probs"]) == sorted(asked)
    assert all(0.0 < p < 1.0 for p in got["probs"].values())
    assert len({round(p, 6) for p in got["probs"].values()}) > 1
