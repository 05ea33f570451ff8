"""``w2s leaderboard --dataset`` with a name that has no results is a mistake said in one line (exit 1)
naming the datasets that do; the dashboard's empty Agents page names the verb that exists."""

from __future__ import annotations

import pytest

from core.results.cache import write_result
from tests.conftest import run_cli


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_unknown_dataset_lists_the_ones_with_results(workspace, capsys, json_flag):
    write_result("demo-math", "vanilla_w2s", "k", 42, {"transfer_acc": 0.5, "seed": 42})
    write_result("demo-chat", "vanilla_w2s", "k", 42, {"transfer_acc": 0.5, "seed": 42})
    assert run_cli("leaderboard", "--dataset", "math", *json_flag) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == ("w2s: error: --dataset: no results for 'math'; datasets with results: "
                                    "demo-chat, demo-math; did you mean demo-math?")
    assert run_cli("leaderboard", "--dataset", "demo-math", *json_flag) == 0
    assert "vanilla_w2s" in capsys.readouterr().out


def test_dashboard_agents_page_names_the_real_verb(workspace):
    from web.app import create_app

    page = create_app(dashboard=True).test_client().get("/agents").get_data(as_text=True)
    assert "w2s agent launch" in page and "w2s agent start" not in page
