"""Dashboard actions in a real headless Chromium: with the operator token pasted, launch a run,
cancel it, retry it and stop an agent from the pages; without it, no action is offered. Then the
same pages at 390 px (a phone): nothing overlaps, nothing is cut off the page. Screenshots at 1400
and 390 px go to ``W2S_SCREENSHOTS`` when set."""

from __future__ import annotations

import os
from pathlib import Path

from core.control.jobs import get_job, list_jobs
from tests.test_dashboard_browser import ARGS, CHROMIUM, dashboard  # noqa: F401 - the fixture

WIDE, PHONE = 1400, 390


def _overlaps(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def test_operator_actions_and_the_phone_layout(dashboard, tmp_path: Path):  # noqa: F811 - fixture
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("W2S_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    url = dashboard["url"]
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": WIDE, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(url + "/queue")
        assert not page.locator("#launch-form").is_visible()  # no token yet: no actions offered
        assert not page.locator("tr.job-row[data-id=job00001] button.cancel").is_visible()
        assert page.locator(".op-hint").is_visible()
        page.fill("#operator-token", dashboard["operator"])
        page.dispatch_event("#operator-token", "change")
        expect(page.locator("#launch-form")).to_be_visible()

        before = {j["id"] for j in list_jobs()}
        page.select_option("#launch-form select[name=idea]", "vanilla_w2s")
        page.select_option("#launch-form select[name=dataset]", "tiny")
        page.fill("#launch-form input[name=seeds]", "42-43")
        page.click("#launch-form button.launch-run")
        expect(page.locator("#status")).to_contain_text("launched")
        new = [j for j in list_jobs() if j["id"] not in before]
        assert sorted(j["meta"]["seed"] for j in new) == [42, 43] and {j["meta"]["source"] for j in new} == {"api"}
        job_id = new[0]["id"]
        row = page.locator(f"tr.job-row[data-id='{job_id}']")
        expect(row).to_contain_text("queued")
        page.screenshot(path=str(shots / f"queue-{WIDE}.png"), full_page=True)

        row.locator("button.cancel").click()
        expect(row.locator("button.retry")).to_be_visible()
        assert get_job(job_id)["state"] == "cancelled"
        row.locator("button.retry").click()
        expect(row.locator("button.cancel")).to_be_visible()
        assert get_job(job_id)["state"] == "queued"

        page.goto(url + "/agents")
        agent_row = page.locator("tr.agent-row[data-id=agent001]")
        agent_row.locator("button.stop").click()
        expect(page.locator("#status")).to_contain_text("stop sent for agent001")
        assert dashboard["store"].table("agents").get("agent001")["stop_requested"] or \
            dashboard["store"].table("agents").get("agent001")["state"] == "stopped"
        page.screenshot(path=str(shots / f"agents-{WIDE}.png"), full_page=True)
        page.goto(url + "/leaderboard")
        page.screenshot(path=str(shots / f"leaderboard-{WIDE}.png"), full_page=True)

        phone = browser.new_page(viewport={"width": PHONE, "height": 844})
        phone.on("pageerror", lambda e: problems.append(str(e)))
        for name in ("leaderboard", "queue", "agents", "gpu", "findings"):
            phone.goto(url + "/" + name)
            phone.wait_for_load_state("load")
            width = phone.evaluate("document.scrollingElement.scrollWidth")
            assert width <= PHONE, (name, width)  # wide tables scroll inside their box, not the page
            boxes = [phone.locator(sel).bounding_box() for sel in (".brand", "nav", "#token-form")]
            assert all(boxes), name
            for i, a in enumerate(boxes):
                for b in boxes[i + 1:]:
                    assert not _overlaps(a, b), (name, boxes)
            for box in boxes:
                assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE + 1, (name, box)
            phone.screenshot(path=str(shots / f"{name}-{PHONE}.png"), full_page=True)
        browser.close()
    assert not problems, problems
