"""The Landlock fallback sandbox, run for real on this kernel: what code inside can read, write,
reach and signal, and when it is chosen."""

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
from core.sandbox.landlock import LANDLOCK_ENV, LandlockSandbox, kernel_abi
from core.sandbox.select import UNSAFE_ENV, default_sandbox, doctor
from tests.conftest import REPO, run_cli, wait_until

PY = sys.executable
BASE_ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module", autouse=True)
def _landlock_works() -> None:
    problem = LandlockSandbox().problem()
    if problem:
        pytest.skip(f"no working Landlock here: {problem}")


def abi() -> int:
    value = kernel_abi()
    assert isinstance(value, int)
    return value


def py(code: str, mounts: list[Mount] | None = None, env: dict[str, str] | None = None,
       network: bool = False) -> subprocess.CompletedProcess[bytes]:
    spec = SandboxSpec([PY, "-c", code], mounts=mounts or [], env={**BASE_ENV, **(env or {})}, network=network)
    return LandlockSandbox().run(spec, timeout=60)


def out(done: subprocess.CompletedProcess[bytes]) -> str:
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def attempt(expr: str) -> str:
    """Python source printing 'ok' or the exception's type name."""
    return f"try:\n    {expr}\n    print('ok')\nexcept OSError as e:\n    print(type(e).__name__)\n"


def test_reads_only_the_allow_list(tmp_path: Path) -> None:
    secret = tmp_path / "labeled_data" / "test.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"label": true}\n')
    visible = tmp_path / "data"
    visible.mkdir()
    (visible / "rows.jsonl").write_text("{}\n")
    code = (attempt(f"open({str(secret)!r}).read()") + attempt(f"os.listdir({str(secret.parent)!r})")
            + attempt(f"open({str(visible / 'rows.jsonl')!r}).read()")
            + attempt("open('/etc/shadow').read()"))
    assert out(py("import os\n" + code, mounts=[Mount(visible)])).split() == [
        "PermissionError", "PermissionError", "ok", "PermissionError"]


def test_writes_only_writable_mounts_and_private_tmp(tmp_path: Path) -> None:
    ro, rw, elsewhere = tmp_path / "ro", tmp_path / "rw", tmp_path / "elsewhere"
    for folder in (ro, rw, elsewhere):
        folder.mkdir()
    code = (attempt(f"open({str(rw / 'out.txt')!r}, 'w').write('ok')")
            + attempt(f"open({str(ro / 'x.txt')!r}, 'w')")
            + attempt(f"open({str(elsewhere / 'x.txt')!r}, 'w')")
            + attempt(f"os.mkdir({str(tmp_path / 'new')!r})")
            + attempt("open('scratch.txt', 'w').write('cwd is the private /tmp')")
            + attempt("tempfile.mkstemp()"))
    words = out(py("import os, tempfile\n" + code, mounts=[Mount(ro), Mount(rw, writable=True)])).split()
    assert words == ["ok", "PermissionError", "PermissionError", "PermissionError", "ok", "ok"]
    assert (rw / "out.txt").read_text() == "ok"
    assert not list(ro.iterdir()) and not list(elsewhere.iterdir()) and not (tmp_path / "new").exists()


def test_environment_is_exactly_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
    code = "import os; print(sorted(k for k in os.environ if k != 'LC_CTYPE'), os.environ['HOME'] == os.getcwd())"
    # LC_CTYPE: the inner Python's own locale coercion (PEP 538), as under bwrap; "/tmp" is the private dir
    assert out(py(code, env={"A": "1", "HOME": "/tmp"})) == "['A', 'HOME', 'PATH'] True"


def test_other_processes_environ_is_denied() -> None:
    host = subprocess.Popen(["sleep", "60"], env={"W2S_SECRET": "sk-must-not-leak"})
    try:
        code = "".join(attempt(f"print(open('/proc/{pid}/environ').read())", ) for pid in (host.pid, os.getpid()))
        done = py(code)
        assert out(done).split() == ["PermissionError", "PermissionError"]
        assert b"sk-must-not-leak" not in done.stdout
    finally:
        host.kill()
        host.wait()


def test_tcp_to_loopback_refused_unless_network() -> None:
    if abi() < 4:
        pytest.skip(f"Landlock ABI {abi()} < 4 cannot restrict TCP (kernel >= 6.7 needed)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    try:
        code = attempt(f"socket.create_connection(('127.0.0.1', {port}), timeout=5)") + attempt("socket.socket().bind(('127.0.0.1', 0))")
        assert out(py("import socket\n" + code)).split() == ["PermissionError", "PermissionError"]
        assert out(py("import socket\n" + code, network=True)).split() == ["ok", "ok"]
    finally:
        server.close()


def test_cannot_signal_outside_and_has_no_capabilities() -> None:
    host = subprocess.Popen(["sleep", "60"])
    try:
        code = attempt(f"os.kill({host.pid}, signal.SIGKILL)") + (
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapBnd'))])")
        words = out(py("import os, signal\n" + code)).split("\n")
        if abi() >= 6:
            assert words[0] == "PermissionError" and host.poll() is None
        assert words[1] == "['0000000000000000', '0000000000000000']"  # root on the host is not root inside
    finally:
        host.kill()
        host.wait()


def test_mounts_elsewhere_refused_and_empty_source_hides(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "data" / "demo").mkdir(parents=True)
    (lib / "data" / "demo" / "labels.py").write_text("LABELS = 1\n")
    (lib / "data" / "rows.py").write_text("ROWS = 1\n")
    (lib / "top.py").write_text("TOP = 1\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SandboxUnavailable, match="cannot show"):
        py("pass", mounts=[Mount(lib, target=Path("/opt/lib"))])
    code = "".join(attempt(f"open({str(p)!r}).read()") for p in
                   (lib / "top.py", lib / "data" / "rows.py", lib / "data" / "demo" / "labels.py"))
    words = out(py(code, mounts=[Mount(lib), Mount(empty, target=lib / "data" / "demo")])).split()
    assert words == ["ok", "ok", "PermissionError"]


def test_library_importable_and_status_passes_through() -> None:
    done = py("import core.common.config as c; print(c.RunConfig().epochs)", mounts=[Mount(REPO / "core")],
              env={"PYTHONPATH": str(REPO)})
    assert out(done).isdigit()
    assert py("raise SystemExit(3)").returncode == 3
    assert py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)").returncode == -15
    started = time.monotonic()
    assert LandlockSandbox().run(SandboxSpec(["/bin/true"], env=BASE_ENV), timeout=30).returncode == 0
    assert time.monotonic() - started < 10


def _sleepers(names: set[str]) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if " ".join(p.info["cmdline"] or []) in names:
            found.append(p)
    return found


def test_kill_tree_and_exit_leave_nothing_running() -> None:
    base = 50_000 + os.getpid() % 10_000  # durations no other test uses: they name our sleepers
    names = {f"sleep {base + i}" for i in range(4)}
    # a daemonised sleeper (own session, parent gone) as well as plain background ones
    script = (f"setsid sleep {base} & (sleep {base + 1} &) ; sleep {base + 2} & exec sleep {base + 3}")
    proc = LandlockSandbox().popen(SandboxSpec(["/bin/sh", "-c", script], env=BASE_ENV))
    wait_until(lambda: len(_sleepers(names)) == 4, timeout=30, what="four sleepers inside the sandbox")
    kill_tree(proc)
    wait_until(lambda: not _sleepers(names), timeout=30, what="every sandboxed process gone")
    # the command exiting takes its leftovers with it, as bwrap's pid namespace does
    leftover = {f"sleep {base + 5}"}
    done = LandlockSandbox().run(SandboxSpec(["/bin/sh", "-c", f"(setsid sleep {base + 5} &); echo started"],
                                             env=BASE_ENV), timeout=30)
    assert done.stdout.decode().strip() == "started"
    wait_until(lambda: not _sleepers(leftover), timeout=30, what="the leftover sleeper gone")


def test_chosen_when_bwrap_missing_and_listed_by_doctor(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(UNSAFE_ENV, raising=False)
    monkeypatch.delenv(LANDLOCK_ENV, raising=False)
    assert run_cli("doctor") == 0
    assert f"sandbox landlock: works (Landlock ABI {abi()}" in capsys.readouterr().out
    monkeypatch.setenv("W2S_BWRAP", "/nonexistent/bwrap")
    chosen = default_sandbox()
    assert isinstance(chosen, LandlockSandbox) and chosen.isolated and chosen.name == "landlock"
    assert [(r.name, r.works) for r in doctor()] == [("bwrap", False), ("landlock", True), ("none", False)]
    assert run_cli("doctor") == 0 and "landlock: works" in capsys.readouterr().out
    monkeypatch.setenv(LANDLOCK_ENV, "0")  # the operator accepts nothing weaker than namespaces
    with pytest.raises(SandboxUnavailable, match=UNSAFE_ENV):
        default_sandbox()
    assert run_cli("doctor") == 1
