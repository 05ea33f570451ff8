"""The JSON API and the referee over real HTTP (waitress on a free port)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from core.control.scheduler import issue_job_token
from core.control.store import Store
from core.control.tokens import issue_run_token
from core.data import holdout
from tests.test_referee import DATASET, gold
from tests.test_referee import scored_dataset as make_dataset


@pytest.fixture
def service(workspace: Path):
    from web.app import create_app
    from web.server import serve_in_thread

    rows = make_dataset(workspace)
    app = create_app(dashboard=False)
    srv = serve_in_thread(app, threads=4)
    store = Store()
    operator = (workspace / ".w2s" / "operator_token").read_text().strip()
    with httpx.Client(base_url=srv.url, timeout=30) as client:
        yield {"client": client, "store": store, "rows": rows, "ws": workspace, "operator": operator}
    srv.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_health_and_operator_token_file(service):
    resp = service["client"].get("/api/health")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Access-Control-Allow-Origin" not in resp.headers
    mode = stat.S_IMODE(os.stat(service["ws"] / ".w2s" / "operator_token").st_mode)
    assert mode == 0o600


def test_referee_refusals_over_http(service):
    c, store, n = service["client"], service["store"], len(service["rows"])
    token = issue_run_token(store, "runA", 20)
    body = {"dataset": DATASET, "split": "test", "predictions": [0] * n}
    assert c.post("/api/evaluate", json=body).status_code == 401
    assert c.post("/api/evaluate", json=body, headers=auth("w2s-run-forged")).status_code == 401
    assert c.post("/api/evaluate", json=body, headers=auth(service["operator"])).status_code == 401
    other_split = c.post("/api/evaluate", json={**body, "split": "train_unlabel"}, headers=auth(token))
    assert other_split.status_code == 400 and "only 'test'" in other_split.json()["error"]
    short = c.post("/api/evaluate", json={**body, "predictions": [0] * (n - 1)}, headers=auth(token))
    assert short.status_code == 400 and f"expected {n} predictions" in short.json()["error"]
    unknown = c.post(
        "/api/evaluate", json={**body, "ids": ["r0000", "nope"], "predictions": [0, 1]}, headers=auth(token)
    )
    assert unknown.status_code == 400 and "not a row of test" in unknown.json()["error"]
    bad_json = c.post("/api/evaluate", content=b"{nope", headers=auth(token))
    assert bad_json.status_code == 400
    for i in range(20):
        ok = c.post("/api/evaluate", json=body, headers=auth(token))
        assert ok.status_code == 200, ok.text
        assert ok.json()["budget_left"] == 19 - i
    spent = c.post("/api/evaluate", json=body, headers=auth(token))
    assert spent.status_code == 429 and "budget spent" in spent.json()["error"]
    assert c.get("/api/evaluations").status_code == 401
    log = c.get("/api/evaluations", params={"run": "runA"}, headers=auth(service["operator"])).json()
    assert sum(1 for e in log["evaluations"] if e["status"] == 200) == 20
    assert {e["status"] for e in log["evaluations"]} == {200, 400, 429}
    other = issue_run_token(store, "runB", 1)
    own = c.get("/api/evaluations", params={"run": "runA"}, headers=auth(other)).json()["evaluations"]
    assert own == []  # a run sees only its own calls


def test_label_probing_attack_learns_no_more_than_budget(service):
    """Flip one prediction per call and watch every number the referee returns."""
    c, store, rows = service["client"], service["store"], service["rows"]
    budget = 20
    token = issue_run_token(store, "attacker", budget)
    layout = holdout.layout(DATASET)
    ids = list(layout.ids)
    base = [0] * len(ids)

    def numbers(resp: httpx.Response) -> dict[str, float]:
        data = resp.json()
        out = {"accuracy": data["accuracy"], "pgr": data["pgr"]}
        out.update({f"subset:{k}": v["accuracy"] for k, v in data["per_subset"].items()})
        return out

    first = c.post("/api/evaluate", json={"dataset": DATASET, "predictions": base}, headers=auth(token))
    reference = numbers(first)
    learned: dict[str, int] = {}
    calls, refused = 1, 0
    for rid_index, rid in enumerate(ids[:200]):
        probe = list(base)
        probe[rid_index] = 1
        resp = c.post("/api/evaluate", json={"dataset": DATASET, "predictions": probe}, headers=auth(token))
        calls += 1
        if resp.status_code == 429:
            refused += 1
            continue
        assert resp.status_code == 200
        now = numbers(resp)
        both = [k for k in now if now[k] is not None and reference.get(k) is not None]
        went_up = any(now[k] > reference[k] for k in both)
        went_down = any(now[k] < reference[k] for k in both)
        if went_up != went_down:  # a visible change names the flipped row's label
            learned[rid] = 1 if went_up else 0
    truth = gold(rows)
    correct = sum(1 for rid, label in learned.items() if truth[rid] == label)
    assert refused == calls - budget  # everything past the budget was refused
    assert correct <= budget
    print(f"probing attack: {calls} calls, {refused} refused, {len(learned)} inferred, {correct} correct")
    assert all(rid in layout.public for rid in learned)  # the holdout never moved a number


def test_holdout_never_scored_over_http(service):
    c, store, rows = service["client"], service["store"], service["rows"]
    meta = {"idea": "probe_idea", "config": {"data_dir": "data/tiny"}}
    store.table("jobs").insert({"id": "runH", "meta": meta, "eval_budget": 5})
    token = issue_job_token(store, store.table("jobs").get("runH"))  # bound to probe_idea on tiny
    truth = gold(rows)
    layout = holdout.layout(DATASET)
    only_private_right = [truth[i] if i in layout.private else 1 - truth[i] for i in layout.ids]
    body = {"dataset": DATASET, "predictions": only_private_right}
    resp = c.post("/api/evaluate", json=body, headers=auth(token))
    assert resp.status_code == 200 and resp.json()["accuracy"] == 0.0
    assert resp.json()["n_scored"] == len(layout.public)
    # the final submission is scored on both parts, once; idea and dataset come from the token
    sub = {"ids": list(layout.ids), "predictions": only_private_right}
    final = c.post("/api/submit", json=sub, headers=auth(token))
    assert final.status_code == 200, final.text
    assert final.json()["public_acc"] == 0.0 and final.json()["private_acc"] == 1.0
    assert c.post("/api/submit", json=sub, headers=auth(token)).status_code == 409
    board = c.get("/api/leaderboard", params={"dataset": DATASET}).json()["rows"]
    row = next(r for r in board if r["idea"] == "probe_idea")
    assert row["source"] == "referee" and row["private_acc"] == 1.0 and row["public_acc"] == 0.0


def test_findings_share_comment_vote_search(service):
    c, store = service["client"], service["store"]
    token = issue_run_token(store, "runF", 3)
    new = {"title": "Confidence filter helps", "summary": "Dropping the 30% least confident labels.",
           "metrics": {"pgr": 0.41}, "config": {"conf": 0.3}}
    assert c.post("/api/findings", json=new).status_code == 401
    assert c.post("/api/findings", json=new, headers=auth("bogus")).status_code == 401
    made = c.post("/api/findings", json=new, headers=auth(token))
    assert made.status_code == 201
    doc = made.json()
    assert doc["author"] == "run:runF" and doc["run"] == "runF"
    bad = c.post("/api/findings", json={**new, "title": ""}, headers=auth(token))
    assert bad.status_code == 400 and "title" in bad.json()["error"]
    fid = doc["id"]
    op = auth(service["operator"])
    assert c.post(f"/api/findings/{fid}/comments", json={"text": "nice"}, headers=op).status_code == 201
    for _ in range(3):
        assert c.post(f"/api/findings/{fid}/vote", json={"value": 1}, headers=auth(token)).status_code == 200
    voted = c.post(f"/api/findings/{fid}/vote", json={"value": 1}, headers=auth(service["operator"])).json()
    assert voted["score"] == 2 and set(voted["votes"]) == {"run:runF", "operator"}
    assert c.get(f"/api/findings/{fid}").json()["comments"][0]["author"] == "operator"
    found = c.get("/api/findings", params={"q": "confidence nice"}).json()["findings"]
    assert [f["id"] for f in found] == [fid]
    assert c.get("/api/findings", params={"q": "absent"}).json()["findings"] == []
    assert c.get("/api/findings/..%2Fetc").status_code == 404
    assert c.post("/api/findings/fdeadbeef/vote", json={}, headers=auth(token)).status_code == 404


def test_jobs_launch_cancel_log_and_path_safety(service):
    c, op = service["client"], service["operator"]
    launch = {"idea": "vanilla_w2s", "config": {"data_dir": "data/tiny", "seed": 7}, "eval_budget": 5}
    assert c.post("/api/jobs", json=launch).status_code == 401
    assert c.post("/api/jobs", json=launch, headers=auth("wrong")).status_code == 401
    assert c.post("/api/jobs", json={**launch, "idea": "../x"}, headers=auth(op)).status_code == 400
    made = c.post("/api/jobs", json=launch, headers=auth(op))
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["state"] == "queued" and job["meta"]["idea"] == "vanilla_w2s"
    assert [j["id"] for j in c.get("/api/jobs").json()["jobs"]] == [job["id"]]
    Path(job["run_dir"], "stdout.log").write_text("line one\nline two\n")
    first = c.get(f"/api/jobs/{job['id']}/log").json()
    assert first["text"] == "line one\nline two\n"
    with open(Path(job["run_dir"], "stdout.log"), "a") as fh:
        fh.write("line three\n")
    more = c.get(f"/api/jobs/{job['id']}/log", params={"offset": first["offset"]}).json()
    assert more["text"] == "line three\n"
    assert c.get(f"/api/jobs/{job['id']}/log", params={"offset": "-1"}).status_code == 400
    assert c.post(f"/api/jobs/{job['id']}/cancel").status_code == 401
    run = issue_run_token(service["store"], "runJ", 3)  # a run token is known, and still no operator
    for path in ("/api/jobs", f"/api/jobs/{job['id']}/cancel", f"/api/jobs/{job['id']}/retry", "/api/agents"):
        refused = c.post(path, json=launch, headers=auth(run))
        assert refused.status_code == 403 and "operator action" in refused.json()["error"]
    zero = c.post("/api/jobs", json={**launch, "eval_budget": 0}, headers=auth(op))
    assert zero.status_code == 201 and zero.json()["eval_budget"] == 0  # 0 stays 0 (was: the default)
    c.post(f"/api/jobs/{zero.json()['id']}/cancel", headers=auth(op))
    cancelled = c.post(f"/api/jobs/{job['id']}/cancel", headers=auth(op))
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert c.post(f"/api/jobs/{job['id']}/cancel", headers=auth(op)).status_code == 409
    bad_paths = ("/api/jobs/..%2F..%2Fetc%2Fpasswd/log", "/api/jobs/a.b/log", "/api/agents/..%2Fx/transcript")
    for path in bad_paths:
        assert c.get(path).status_code == 404


def test_agent_transcript_tail(service):
    c, store, ws = service["client"], service["store"], service["ws"]
    run_dir = ws / "runs" / "job1"
    run_dir.mkdir(parents=True)
    lines = [{"type": "assistant", "text": "hello"}, {"type": "tool_use", "name": "evaluate"}]
    (run_dir / "transcript.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"partial"')
    store.table("agents").insert({"id": "ag1", "job_id": "job1", "state": "running"})
    outside = {"id": "ag2", "job_id": "zz", "transcript_path": "/etc/passwd", "state": "x"}
    store.table("agents").insert(outside)
    assert {a["id"] for a in c.get("/api/agents").json()["agents"]} == {"ag1", "ag2"}
    got = c.get("/api/agents/ag1/transcript").json()
    assert got["entries"] == lines  # the half-written last line waits for the next poll
    again = c.get("/api/agents/ag1/transcript", params={"offset": got["offset"]}).json()
    assert again["entries"] == [] and again["offset"] == got["offset"]
    assert c.get("/api/agents/ag2/transcript").json()["entries"] == []  # outside runs/: ignored
    assert c.get("/api/agents/nope/transcript").status_code == 404


def test_gpu_and_leaderboard_and_limits(service, monkeypatch):
    c, ws = service["client"], service["ws"]
    fake = ws / "gpus.json"
    fake.write_text(json.dumps([{"name": "Fake H100", "mem_total_mb": 81559, "util_pct": 12}]))
    monkeypatch.setenv("W2S_FAKE_GPUS", str(fake))
    gpus = c.get("/api/gpu").json()["gpus"]
    assert gpus and gpus[0]["name"] == "Fake H100"
    board = c.get("/api/leaderboard", params={"dataset": DATASET}).json()
    assert {b["producer"] for b in board["baselines"]} == {"weak_artifacts", "train_ceiling"}
    assert c.get("/api/leaderboard", params={"dataset": "../x"}).status_code == 400
    huge = b'{"predictions": "' + b"x" * (17 * 1024 * 1024) + b'"}'
    token = issue_run_token(service["store"], "runBig", 1)
    assert c.post("/api/evaluate", content=huge, headers=auth(token)).status_code == 413
    assert c.get("/api/nothing").status_code == 404


def test_agent_launch_and_stop_need_the_operator(service, monkeypatch):
    c, op = service["client"], auth(service["operator"])
    assert c.post("/api/agents", json={"direction": "try entropy filtering"}).status_code == 401
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    no_key = c.post("/api/agents", json={"direction": "try entropy filtering"}, headers=op)
    assert no_key.status_code == 400 and "ANTHROPIC_API_KEY" in no_key.json()["error"]
    assert c.post("/api/agents", json={"direction": 5}, headers=op).status_code == 400
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-real")
    made = c.post("/api/agents", json={"direction": "try entropy filtering", "max_evals": 3}, headers=op)
    assert made.status_code == 201, made.text
    agent = made.json()
    assert agent["budgets"]["max_evals"] == 3 and agent["job_id"]
    assert "sk-test-not-real" not in json.dumps(c.get("/api/jobs").json())
    assert c.post(f"/api/agents/{agent['id']}/stop").status_code == 401
    stopped = c.post(f"/api/agents/{agent['id']}/stop", headers=op)
    assert stopped.status_code == 200 and stopped.json()["stop_requested"] is True
