"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright).

Loads every page against a workspace holding the imported reference archive, checks the rows are
there and the polling JavaScript works (log tail, transcript, voting) without CSP or console
errors, and writes a screenshot of each page (``W2S_SCREENSHOTS`` names the folder to keep them).
In CI (env ``CI`` set) a missing browser is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import in_ci

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _require_browser() -> None:
    if CHROMIUM.is_file():
        return
    message = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def dashboard(workspace: Path, reference_archive: Path, monkeypatch: pytest.MonkeyPatch):
    _require_browser()
    from core.control.findings import share
    from core.control.store import Store
    from core.results.archive import import_archive
    from web.app import create_app
    from web.server import serve_in_thread

    report = import_archive(reference_archive, root=workspace / "cache_results")
    assert report.n_imported > 100
    store = Store()
    # one referee-scored run, so the leaderboard shows a public/private pair
    from core.data import holdout
    from core.referee import service as referee
    from tests.test_referee import DATASET, gold, scored_dataset

    truth = gold(scored_dataset(workspace))
    store.table("jobs").insert({"id": "runref01", "kind": "agent", "name": "agent run", "state": "succeeded",
                                "executor": "local",
                                "created": 1764000000.0, "meta": {"idea": "agent_idea",
                                                                  "config": {"data_dir": f"data/{DATASET}"}}})
    layout = holdout.layout(DATASET)
    referee.final_score(store, "runref01", DATASET, {i: truth[i] for i in layout.ids})
    run_dir = workspace / "runs" / "job00001"
    run_dir.mkdir(parents=True)
    (run_dir / "stdout.log").write_text("epoch 1 loss 0.69\nepoch 2 loss 0.52\n")
    store.table("jobs").insert(
        {"id": "job00001", "kind": "idea_run", "name": "vanilla_w2s demo-math seed 42", "state": "running",
         "executor": "local",
         "created": 1764100000.0, "gpus": [0], "progress": 0.4, "run_dir": str(run_dir), "meta": {}}
    )
    (run_dir / "transcript.jsonl").write_text(
        json.dumps({"type": "assistant", "text": "Reading Idea.md first."}) + "\n"
        + json.dumps({"type": "tool_use", "name": "evaluate", "input": {"dataset": "demo-math"}}) + "\n"
    )
    store.table("agents").insert(
        {"id": "agent001", "job_id": "job00001", "state": "running", "direction": "confidence filtering",
         "cost_usd": 0.42, "created": "2026-11-26T17:00:00"}
    )
    finding = share(store, title="Confident labels beat vanilla on math",
                    summary="PGR 0.41 vs 0.33 over 4 seeds.", author="run:job00001",
                    metrics={"pgr": 0.41}, config={"conf": 0.3}, run="job00001")
    gpus = workspace / "gpus.json"
    gpus.write_text(json.dumps([{"name": "NVIDIA H100 80GB HBM3", "util_pct": 63, "mem_used_mb": 40000,
                                 "mem_total_mb": 81559, "temp_c": 51, "power_w": 310, "power_limit_w": 700}]))
    monkeypatch.setenv("W2S_FAKE_GPUS", str(gpus))
    srv = serve_in_thread(create_app(dashboard=True), threads=4)
    operator = (workspace / ".w2s" / "operator_token").read_text().strip()
    yield {"url": srv.url, "finding": finding, "operator": operator, "store": store}
    srv.stop()


def test_every_page_in_headless_chromium(dashboard, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    from core.results.leaderboard import leaderboard_rows

    shots = Path(os.environ.get("W2S_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    url = dashboard["url"]
    expected_rows = leaderboard_rows()
    assert len(expected_rows) >= 10
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        page.goto(url + "/")
        assert page.url.endswith("/leaderboard")
        page.wait_for_selector("tr.lb-row")
        ideas = page.locator("tr.lb-row td.idea").all_text_contents()
        assert len(ideas) == len(expected_rows)
        assert {"vanilla_w2s", "critic", "train_only_on_confident_labels", "ue_zeroshot"} <= set(ideas)
        assert page.locator("#baselines tbody tr").count() >= 6
        referee_row = page.locator("tr.lb-row[data-idea=agent_idea]")
        assert "1.000 / 1.000" in referee_row.inner_text() and "referee" in referee_row.inner_text()
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
        page.goto(url + "/leaderboard?dataset=math")
        page.wait_for_selector("tr.lb-row")
        datasets = set(page.locator("tr.lb-row td:nth-child(2)").all_text_contents())
        assert datasets == {"math"}

        page.goto(url + "/queue")
        page.click("tr.job-row[data-id=job00001]")
        expect(page.locator("#log")).to_contain_text("epoch 2 loss")  # fetched by the polling script
        page.screenshot(path=str(shots / "queue.png"), full_page=True)

        page.goto(url + "/agents")
        page.click("tr.agent-row[data-id=agent001]")
        page.wait_for_selector("#transcript .entry-tool_use")
        assert "Reading Idea.md first." in page.locator("#transcript").inner_text()
        page.screenshot(path=str(shots / "agents.png"), full_page=True)

        page.goto(url + "/gpu")
        page.wait_for_selector(".gpu-card")
        assert "H100" in page.locator(".gpu-card h3").first.inner_text()
        page.screenshot(path=str(shots / "gpu.png"), full_page=True)

        page.goto(url + "/findings")
        assert "Confident labels beat vanilla" in page.locator(".finding h3").inner_text()
        page.fill("#operator-token", dashboard["operator"])
        page.dispatch_event("#operator-token", "change")
        page.click("button.vote[data-value='1']")
        expect(page.locator(".finding .score")).to_have_text("1")
        page.fill("form.comment input[name=text]", "reproduced on 2 more seeds")
        page.click("form.comment button")
        page.wait_for_selector(".comments li")
        page.screenshot(path=str(shots / "findings.png"), full_page=True)
        page.click(".finding h3 a")
        page.wait_for_url(f"**/findings/{dashboard['finding']['id']}")
        assert "reproduced on 2 more seeds" in page.locator(".comments").inner_text()
        page.screenshot(path=str(shots / "finding.png"), full_page=True)
        browser.close()
    fid = dashboard["finding"]["id"]
    from core.control.findings import get

    stored = get(dashboard["store"], fid)
    assert stored["votes"] == {"operator": 1}
    assert stored["comments"][0]["text"] == "reproduced on 2 more seeds"
    assert not problems, problems
    assert sorted(p.name for p in shots.iterdir()) == [
        "agents.png", "finding.png", "findings.png", "gpu.png", "leaderboard.png", "queue.png"
    ]
