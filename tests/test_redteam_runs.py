"""Red team: an idea's ``run.py`` attacks the trust boundary and each attack's outcome is observed.

Every test runs the real runner (``core.app.seed_job.run_seed`` or ``w2s run --local``) and the real
sandbox (bwrap) on a small dataset with cached baselines, so the idea's process is exactly what a
job starts. Before the boundary, idea code ran in the runner's process with the workspace as its
working directory: each of these attacks read every label (or a secret), and the forged, partial
and log attacks reached the leaderboard or the job log.
"""

from __future__ import annotations

import json
import random
import re
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from core.app.seed_job import run_seed
from core.common.errors import UserError
from core.referee.service import RefereeError, final_score
from core.results.cache import read_predictions, result_key, result_path, write_result
from core.results.leaderboard import leaderboard_rows
from core.run.resolve import prepare_config
from core.sandbox.base import UNVERIFIED_LABEL
from core.sandbox.bwrap import BwrapSandbox
from tests.conftest import make_dataset, run_cli
from tests.tiny_w2s import fake_baselines, tiny_config

pytestmark = pytest.mark.skipif(BwrapSandbox().problem() is not None, reason="bwrap cannot run here")

DS = "redteam"
SECRET = "sk-ant-redteam-7f3a9c"  # planted in the runner's environment and in fake token files


def _splits() -> dict[str, list[dict[str, Any]]]:
    """Binary rows with random labels; 60 test rows, so accuracies are not round numbers."""
    rng = random.Random(13)

    def rows(split: str, n: int) -> list[dict[str, Any]]:
        return [{"question": f"Is {split} item {i} good?", "choice": "yes", "label": rng.random() < 0.5,
                 "subset": "s"} for i in range(n)]

    return {"train_label": rows("train_label", 8), "train_unlabel": rows("train_unlabel", 8),
            "test": rows("test", 60)}


@pytest.fixture
def rt(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The dataset, cached baselines, planted secrets; the config a seed runs with."""
    make_dataset(workspace, DS, _splits())
    cfg = prepare_config(tiny_config(DS))
    fake_baselines(workspace, cfg, [42], weak_acc=0.5, strong_acc=0.9)
    state = workspace / ".w2s"
    (state / "job_secrets").mkdir(parents=True)
    (state / "operator_token").write_text(SECRET)
    (state / "job_secrets" / "job1.json").write_text(json.dumps({"ANTHROPIC_API_KEY": SECRET}))
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("W2S_RUN_TOKEN", SECRET)
    return {"ws": workspace, "cfg": cfg}


ATTACK = '''
import glob, os
from pathlib import Path
from core.data.datasets import load_split
from core.run import experiment

WS = {ws!r}
DS = {ds!r}


def labels_from(path):
    split = load_split(Path(path))
    return {{r["id"]: bool(r["label"]) for r in split.rows if "label" in r}}


{attempt}


def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    try:
        labels = attempt()
        experiment.log(f"attack: got {{len(labels)}} labels")
    except Exception as exc:
        labels = {{}}
        experiment.log(f"attack: {{type(exc).__name__}}")
    preds = {{r["id"]: (1.0 if labels[r["id"]] else 0.0) if r["id"] in labels else 0.5 for r in data.test}}
    return {{"test_predictions": preds}}
'''


def _idea(ws: Path, name: str, code: str) -> None:
    folder = ws / "ideas" / name
    folder.mkdir(parents=True)
    (folder / "run.py").write_text(code)


def _attack(rt: dict[str, Any], name: str, attempt: str, sandbox: Any = None) -> tuple[list[str], dict[str, Any]]:
    """Run ``attempt()`` as an idea's label theft; (the attack's log lines, the stored result)."""
    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, name, ATTACK.format(ws=str(ws), ds=DS, attempt=textwrap.dedent(attempt)))
    lines: list[str] = []
    result = run_seed(name, cfg, log=lines.append, run_id=f"rt-{name}", sandbox=sandbox)
    return [ln for ln in lines if ln.startswith("attack")], result


def _assert_nothing_reached(lines: list[str], result: dict[str, Any], name: str, cfg: Any,
                            allowed: tuple[str, ...] = ("FileNotFoundError", "PermissionError")) -> None:
    assert len(lines) == 1 and lines[0] in {f"attack: {e}" for e in allowed} | {"attack: got 0 labels"}, lines
    kept = read_predictions(DS, name, result_key(cfg), 42)
    assert kept is not None and set(kept.values()) == {0.5}  # only the fallback: no label came through
    assert result["w2s_source"] == "referee" and result["public_acc"] < 1.0


BY_PATH = '''
    def attempt():
        try:
            return labels_from(f"labeled_data/{DS}/test.jsonl")  # relative to the working directory
        except FileNotFoundError:
            return labels_from(f"{WS}/labeled_data/{DS}/test.jsonl")
'''


def test_a_open_labels_by_path(rt):
    lines, result = _attack(rt, "by_path", BY_PATH)
    _assert_nothing_reached(lines, result, "by_path", rt["cfg"])


def test_control_the_same_attack_without_isolation_reads_every_label(rt):
    """The attack code works: without the sandbox (the debugging mode) it reads all labels and
    predicts perfectly, which is why that mode's results are unverified and never ranked."""
    from core.sandbox.unsafe import UnsafeNoSandbox

    lines, result = _attack(rt, "by_path_unsafe", BY_PATH, sandbox=UnsafeNoSandbox())
    assert lines == ["attack: got 60 labels"]
    assert result["public_acc"] == result["private_acc"] == 1.0 and result["w2s_source"] == UNVERIFIED_LABEL
    assert not next(r for r in leaderboard_rows(DS) if r["idea"] == "by_path_unsafe")["ranked"]


def test_b_glob_for_labels(rt):
    lines, result = _attack(rt, "by_glob", '''
        def attempt():
            found = {}
            for root in (WS, os.path.dirname(WS), "/tmp", "/work", "/root", "/home", os.getcwd()):
                for path in glob.glob(f"{root}/**/*.jsonl", recursive=True):
                    try:
                        found.update(labels_from(path))
                    except Exception:
                        pass
            return found
    ''')
    _assert_nothing_reached(lines, result, "by_glob", rt["cfg"])


def test_c_symlink_to_labels(rt):
    lines, result = _attack(rt, "by_symlink", '''
        def attempt():
            link = "/tmp/innocent.jsonl"
            os.symlink(f"{WS}/labeled_data/{DS}/test.jsonl", link)
            return labels_from(link)
    ''')
    _assert_nothing_reached(lines, result, "by_symlink", rt["cfg"])


def test_c_trusted_side_never_follows_a_link_the_idea_left(tmp_path):
    from core.run.runner import read_untrusted

    target = tmp_path / "labels.jsonl"
    target.write_text('{"label": true}\n')
    (tmp_path / "predictions.json").symlink_to(target)
    assert read_untrusted(tmp_path / "predictions.json", 1 << 20) is None
    import os

    os.mkfifo(tmp_path / "events.jsonl")  # a fifo must not block the runner either
    assert read_untrusted(tmp_path / "events.jsonl", 1 << 20) is None


def test_d_path_built_from_strings(rt):
    lines, result = _attack(rt, "by_strings", '''
        def attempt():
            here = os.path.dirname(os.path.abspath(__file__))
            name = "".join(chr(c) for c in (108, 97, 98, 101, 108, 101, 100)) + "_" + "da" + "ta"
            for path in (os.path.join(here, "..", "..", name, DS, "te" + "st.jsonl"),
                         "/".join([WS, name, DS, "test.jsonl"])):
                try:
                    return labels_from(path)
                except FileNotFoundError:
                    pass
            raise FileNotFoundError(name)
    ''')
    _assert_nothing_reached(lines, result, "by_strings", rt["cfg"])


def test_e_proc_environ_and_token_files(rt):
    lines, result = _attack(rt, "by_proc", f'''
        def attempt():
            hits = []
            for path in glob.glob("/proc/[0-9]*/environ"):
                try:
                    if {SECRET!r}.encode() in open(path, "rb").read():
                        hits.append(path)
                except OSError:
                    pass
            if {SECRET!r} in repr(dict(os.environ)):
                hits.append("own environment")
            for path in glob.glob(f"{{WS}}/.w2s/**", recursive=True):
                try:
                    if {SECRET!r} in open(path).read():
                        hits.append(path)
                except OSError:
                    pass
            argv0 = sorted(os.path.basename(open(p, "rb").read().split(b"\\0")[0].decode())
                           for p in glob.glob("/proc/[0-9]*/cmdline"))
            experiment.log(f"attack-secrets: {{hits}} processes={{argv0}}")
            return {{}}
    ''')
    logged = [ln for ln in lines if ln.startswith("attack-secrets")]
    # nothing found, and only the sandbox's own two processes are visible (bwrap's init and python)
    assert re.fullmatch(r"attack-secrets: \[\] processes=\['bwrap', 'python[0-9.]*'\]", logged[0]), logged
    assert lines[-1] == "attack: got 0 labels"
    assert result["w2s_source"] == "referee"


def test_f_forged_seed_files_are_never_ranked(rt, capsys):
    cfg = rt["cfg"]
    key = result_key(cfg)
    # from inside a run the host's cache is not there: a write lands in the sandbox's private
    # filesystem (or fails) and is gone when the run ends
    lines, result = _attack(rt, "forger", f'''
        def attempt():
            import json
            path = f"{{WS}}/cache_results/{{DS}}_forger/{key}/seed_99.json"
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                json.dump({{"transfer_acc": 1.0, "w2s_source": "referee", "seed": 99}}, fh)
            return {{}}
    ''')
    assert lines in (["attack: got 0 labels"], ["attack: PermissionError"], ["attack: OSError"]), lines
    assert not result_path(DS, "forger", key, 99).exists()
    honest = json.loads(result_path(DS, "forger", key, 42).read_text())
    assert honest["transfer_acc"] != 1.0 and honest["run_id"] == "rt-forger"  # the referee's
    # written by hand on the trusted side: beside a referee-scored seed it is not counted...
    write_result(DS, "forger", key, 7, {"transfer_acc": 1.0, "strong_model": cfg.strong_model,
                                        "weak_model": cfg.weak_model})
    # ...and alone (no referee source; even one claiming a source it does not have) it is not ranked
    write_result(DS, "vanilla_w2s", key, 42, {"transfer_acc": 1.0, "strong_model": cfg.strong_model,
                                             "weak_model": cfg.weak_model, "w2s_source": "local run"})
    rows = {r["idea"]: r for r in leaderboard_rows(DS)}
    assert rows["forger"]["ranked"] and rows["forger"]["seeds"] == [42] and rows["forger"]["excluded_seeds"] == [7]
    assert rows["forger"]["transfer_acc"] == honest["transfer_acc"]
    assert not rows["vanilla_w2s"]["ranked"]
    assert [r["idea"] for r in leaderboard_rows(DS)] == ["forger", "vanilla_w2s"]  # ranked rows first
    # `w2s verify` rescores kept predictions: the honest seed checks out; a referee claim without
    # predictions, or an edited accuracy, is reported
    assert run_cli("verify", "--dataset", DS, "--idea", "forger") == 0
    write_result(DS, "forger", key, 8, {**honest, "seed": 8, "transfer_acc": 1.0, "private_acc": 1.0})
    write_result(DS, "forger", key, 42, {**honest, "public_acc": 1.0})
    capsys.readouterr()
    assert run_cli("verify", "--dataset", DS, "--idea", "forger") == 1
    out = capsys.readouterr().out
    assert "no predictions: " in out and "seed_8.json" in out
    assert "mismatch: " in out and "seed_42.json" in out and "public_acc stored 1.0" in out


def test_g_partial_coverage_is_refused_and_nothing_ranked(rt):
    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, "cherry", '''
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.9 for r in data.test[: len(data.test) // 3]}}
''')
    with pytest.raises(UserError, match="partial submission refused: 40 of 60 test rows"):
        run_seed("cherry", cfg, run_id="rt-cherry")
    assert not result_path(DS, "cherry", result_key(cfg), 42).exists()
    assert all(r["idea"] != "cherry" for r in leaderboard_rows(DS))
    from core.control.store import default_store

    finals = default_store().table("evaluations").search(lambda d: d.get("run_id") == "rt-cherry")
    assert finals == []
    # the referee refuses the same submission made to it directly
    from core.data.datasets import load_split

    ids = load_split(ws / "data" / DS / "test.jsonl").ids[:20]
    with pytest.raises(RefereeError, match="must cover all 60 test rows"):
        final_score(default_store(), "rt-cherry-direct", DS, {i: 0.9 for i in ids}, idea="cherry", cfg=cfg)


def test_h_job_log_and_result_json_carry_only_the_rounded_public_accuracy(rt, capsys):
    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, "plain", '''
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.9 for r in data.test}}
''')
    code = run_cli("run", "--idea", "plain", "--data-dir", f"data/{DS}", "--local", "--json",
                   "--weak-model", "demo-weak", "--strong-model", "demo-strong", "--epochs", "1",
                   "--batch-size", "8", "--lr", "0.001", "--max-ctx", "64")
    assert code == 0, capsys.readouterr()
    run = json.loads(capsys.readouterr().out)[0]
    run_dir = Path(run["run_dir"])
    stored = json.loads(result_path(DS, "plain", result_key(cfg), 42).read_text())
    assert stored["w2s_source"] == "referee" and stored["run_id"] == run_dir.name
    secret_numbers = [stored[k] for k in ("transfer_acc", "private_acc", "public_acc", "pgr", "pgr_public")]
    assert all(isinstance(v, float) and round(v, 2) != v for v in secret_numbers), secret_numbers  # not vacuous
    summary = json.loads((run_dir / "result.json").read_text())
    assert set(summary) <= {"idea", "ok", "state", "dataset", "seed", "source", "public_acc", "accuracy_step",
                            "key", "path", "note"}
    assert summary["state"] == "scored" and summary["public_acc"] == round(stored["public_acc"], 2)
    for name in ("stdout.log", "result.json", "progress.json", "command.json"):
        text = (run_dir / name).read_text()
        for value in secret_numbers:
            for shown in {repr(value), f"{value:.3f}", f"{value:.4f}", f"{value:.6f}"}:
                assert shown not in text, (name, shown)
        assert not re.search(r"transfer|private|pgr", text, re.IGNORECASE), name


def test_unsandboxed_results_are_unverified_and_never_ranked(rt):
    from core.sandbox.unsafe import UnsafeNoSandbox

    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, "debug", '''
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.9 for r in data.test}}
''')
    result = run_seed("debug", cfg, run_id="rt-debug", sandbox=UnsafeNoSandbox())
    stored = json.loads(result_path(DS, "debug", result_key(cfg), 42).read_text())
    assert stored["w2s_source"] == UNVERIFIED_LABEL == result["w2s_source"]
    row = next(r for r in leaderboard_rows(DS) if r["idea"] == "debug")
    assert not row["ranked"] and row["source"] == UNVERIFIED_LABEL
    # a referee-scored seed is never replaced by an unverified one
    scored = run_seed("debug", cfg.replace(seed=42), run_id="rt-debug-2")
    again = run_seed("debug", cfg, run_id="rt-debug-3", sandbox=UnsafeNoSandbox())
    assert again["path"] is None and "referee-scored" in again["note"]
    assert json.loads(Path(scored["path"]).read_text())["run_id"] == "rt-debug-2"


def test_a_runaway_idea_is_stopped_with_its_whole_process_tree(rt):
    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, "runaway", '''
import subprocess, time

def run_experiment(cfg):
    subprocess.Popen(["sleep", "4242.5"])
    time.sleep(600)
''')
    with pytest.raises(UserError, match="time limit"):
        run_seed("runaway", cfg, run_id="rt-runaway", timeout_s=4)
    left = [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == ["4242.5"]]
    assert left == []


def test_cancelling_the_job_stops_the_sandbox_and_everything_in_it(rt):
    """SIGTERM to the job (what cancel sends) unwinds the runner, which kills the sandbox's tree."""
    import os
    import signal
    import subprocess

    from core.control.submit import runner_command
    from tests.conftest import wait_until

    ws, cfg = rt["ws"], rt["cfg"]
    _idea(ws, "stubborn", '''
import signal, subprocess, time

def run_experiment(cfg):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(["sleep", "4343.5"], start_new_session=True)
    time.sleep(600)
''')
    run_dir = ws / "runs" / "job-cancel"
    env = {**os.environ, "W2S_WORKSPACE": str(ws), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    job = subprocess.Popen(runner_command("stubborn", cfg, run_dir), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    def marker() -> list[psutil.Process]:
        return [p for p in psutil.process_iter(["cmdline"]) if (p.info["cmdline"] or [])[-1:] == ["4343.5"]]

    try:
        wait_until(marker, timeout=60, what="the idea's child process")
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=30) != 0
    finally:
        if job.poll() is None:
            job.kill()
    assert marker() == []
    summary = json.loads((run_dir / "result.json").read_text())
    assert summary["state"] == "cancelled" and summary["ok"] is False


def test_i_a_job_cannot_create_jobs_or_raise_a_budget(rt):
    """Before the boundary, a job called ``core.jobs.submit_job(eval_budget=10000)`` in the runner's
    process and the scheduler gave it a 10,000-evaluation token. Inside the sandbox there is no
    store, no service address and no network: whatever it does, the real queue is untouched."""
    from core.control.jobs import list_jobs

    before = [j["id"] for j in list_jobs()]
    lines, result = _attack(rt, "spawner", '''
        def attempt():
            import socket
            made = []
            try:
                from core.control.jobs import submit_job  # needs executors/, which is not in the view
                made.append(submit_job("idea_run", ["sleep", "1"], eval_budget=10000)["id"])
            except Exception as exc:
                experiment.log(f"attack-spawn: {type(exc).__name__}")
            try:
                socket.create_connection(("127.0.0.1", 8000), timeout=3)
                experiment.log("attack-net: connected")
            except OSError:
                experiment.log("attack-net: no network")
            experiment.log(f"attack-spawned: {made}")
            return {}
    ''')
    assert "attack-net: no network" in lines and "attack-spawned: []" in lines, lines
    assert [j["id"] for j in list_jobs()] == before  # nothing queued where the scheduler looks
    assert not list((rt["ws"] / ".w2s").glob("tokens*")) or all(
        "10000" not in p.read_text() for p in (rt["ws"] / ".w2s").glob("tokens*"))
    assert result["w2s_source"] == "referee"
