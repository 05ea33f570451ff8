"""The agent's instructions carry the game, the rules and the launch-time specifics."""

from __future__ import annotations

from pathlib import Path

from core.agent.budgets import Budgets
from core.agent.prompt import SYSTEM_PROMPT, first_message
from core.run.idea_md import idea_md_path, idea_md_sections


def test_system_prompt_states_the_setup_and_rules() -> None:
    for needle in ("PGR = (transfer_acc - weak_acc) / (strong_acc - weak_acc)", "TEMPLATE", "train_unlabel",
                   "Never look for", "Report every seed", "private holdout", "share_finding", "finish"):
        assert needle in SYSTEM_PROMPT, needle
    # long runs: the tools and habits a week of work needs, and tuning off test (item 6 of issue 19)
    for needle in ("`wait`", "`plot`", "@core/run/experiment.py", "@findings", "NOTES.md", "core.run.validation",
                   "out of `train_unlabel` (never `test`)", "few more turns to share findings"):
        assert needle in " ".join(SYSTEM_PROMPT.split()), needle
    from core.agent.tools import tool_names

    assert {"wait", "plot"} <= set(tool_names())


def test_first_message_names_direction_folder_datasets_and_budgets(workspace: Path) -> None:
    (workspace / "data" / "demo-math").mkdir(parents=True)
    (workspace / "data" / "demo-math" / "test.jsonl").write_text("{}\n")
    (workspace / "data" / "half-made").mkdir()
    text = first_message("Try EM on a noisy channel.", "agent_x", Budgets(max_usd=2, max_turns=9,
                                                                           max_wall_s=1800, max_evals=5),
                         workspace / "ideas" / "agent_x")
    assert "Try EM on a noisy channel." in text and "ideas/agent_x/" in text
    assert "data/demo-math" in text and "half-made" not in text
    assert "$2.00" in text and "9 turns" in text and "0.50 hours" in text and "5 referee evaluations" in text


def test_idea_md_menu_has_the_ten_directions() -> None:
    sections = idea_md_sections(idea_md_path().read_text(encoding="utf-8"))
    titles = [t.lower() for t, _ in sections]
    assert len(sections) == 10 and all(len(body) > 200 for _, body in sections)
    for word in ("elicitation", "reweighting", "noisy channel", "distillation", "rank", "learnability",
                 "evolutionary", "probes"):
        assert any(word in t for t in titles), word
