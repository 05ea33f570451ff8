"""The pod's start command: ``python -m core.sandbox.pod_bootstrap`` (standard library only).

Why a bootstrap: the pod is a machine w2s does not control, reached only through S3. Its environment
holds one pre-signed URL, ``W2S_POD_PLAN_URL``, and non-secret settings: no AWS key, no RunPod key,
no Anthropic key. The plan behind that URL (written by :mod:`core.sandbox.runpod`) says what to fetch
(GET URLs of the input tarballs), what to run (the idea's command, its environment: exactly the
sandbox spec's, rewritten for the pod) and where to put what it makes (PUT URLs).

What it does, in order:

1. fetches the plan; if the run's ``status.json`` already says ``exited`` (RunPod restarted the
   container after the run), it does nothing again and waits to be terminated;
2. reports ``status.json`` (a heartbeat counter) and, as they grow, ``events.jsonl`` (progress) and
   the command's output (``log``) every ``upload_every_s`` seconds (whole-object overwrites, capped);
3. downloads and unpacks the inputs (``tarfile``'s ``data`` filter: no links out, no devices);
4. runs the command (inside the pod there is no further sandbox: the pod is the isolation boundary);
5. uploads ``predictions.json``, ``error.json`` and ``idea_output.json`` when present (five tries each),
   the plan's ``writeback`` folder (an agent's idea folder) as a tarball of its regular files and
   folders (links and the rest left out, size-capped), the last events and log, then ``status.json``
   with the exit code and which outputs arrived;
6. lingers ``linger_s`` seconds for the trusted side to terminate the pod, then exits.

SIGTERM is passed on to the command; the outputs are still uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PLAN_ENV = "W2S_POD_PLAN_URL"
OUTPUTS = ("predictions.json", "error.json", "idea_output.json")
SETUP_FAILED = 3


def say(line: str) -> None:
    print(f"[w2s-pod] {line}", flush=True)  # the pod's own log (RunPod console): never a URL


def http(url: str, data: bytes | None = None, tries: int = 5, timeout: float = 60.0) -> bytes | None:
    """GET (or PUT ``data``) with retries; None for a 404 GET; OSError after the last try."""
    delay = 1.0
    for attempt in range(tries):
        request = urllib.request.Request(url, data=data, method="GET" if data is None else "PUT")
        if data is not None:
            request.add_header("Content-Type", "application/octet-stream")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the plan's URLs
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if data is None and exc.code == 404:
                return None
            error: OSError = OSError(f"HTTP {exc.code}")
        except (urllib.error.URLError, OSError) as exc:
            error = OSError(str(getattr(exc, "reason", exc)))
        if attempt < tries - 1:
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
    raise error


def fetch_to(url: str, dest: Path) -> None:
    """Stream a (possibly large) GET to a file."""
    with urllib.request.urlopen(url, timeout=120) as response, open(dest, "wb") as fh:  # noqa: S310
        shutil.copyfileobj(response, fh, 1 << 20)


class Reporter:
    """The heartbeat: status, progress and log to S3 every few seconds (only what changed)."""

    def __init__(self, plan: dict[str, Any], log_path: Path) -> None:
        self.put: dict[str, str] = plan["put"]
        self.every = float(plan.get("upload_every_s", 5.0))
        limits = plan.get("limits") or {}
        self.limits = {"events": int(limits.get("events", 16 << 20)), "log": int(limits.get("log", 32 << 20))}
        self.files = {"events": Path(plan["out"]) / "events.jsonl", "log": log_path}
        self.sent: dict[str, int] = {"events": -1, "log": -1}
        self.beat = 0
        self.state = "starting"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def status(self, extra: dict[str, Any] | None = None, tries: int = 1) -> None:
        self.beat += 1
        doc = {"state": self.state, "beat": self.beat, "time": time.time(), **(extra or {})}
        http(self.put["status"], json.dumps(doc).encode(), tries=tries)

    def files_up(self, tries: int = 1) -> None:
        for name, path in self.files.items():
            try:
                size = path.stat().st_size if path.is_file() and not path.is_symlink() else 0
            except OSError:
                continue
            size = min(size, self.limits[name])
            if size == self.sent[name] or size == 0:
                continue
            with open(path, "rb") as fh:
                data = fh.read(size)
            http(self.put[name], data, tries=tries)
            self.sent[name] = size

    def once(self) -> None:
        with self.lock:
            try:
                self.files_up()
                self.status()
            except OSError as exc:
                say(f"report failed (will retry): {exc}")

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.once()

    def start(self) -> None:
        self.once()
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=self.every + 120)


def unpack(inputs: list[dict[str, Any]], workdir: Path) -> None:
    for item in inputs:
        target = Path(item["dir"])
        target.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="input-", suffix=".tar.gz", dir=workdir)
        os.close(fd)
        try:
            fetch_to(item["url"], Path(name))
            with tarfile.open(name, "r:gz") as tar:
                tar.extractall(target, filter="data")
        finally:
            os.unlink(name)


def upload_outputs(plan: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The run's outputs that exist (regular files under the cap): (uploaded, failed)."""
    out, done, failed = Path(plan["out"]), [], []
    cap = int((plan.get("limits") or {}).get("outputs", 256 << 20))
    for name in OUTPUTS:
        path = out / name
        if path.is_symlink() or not path.is_file() or path.stat().st_size > cap:
            continue
        try:
            http(plan["put"][name], path.read_bytes(), tries=5)
            done.append(name)
        except OSError as exc:
            say(f"upload of {name} failed after 5 tries: {exc}")
            failed.append(name)
    return done, failed


def pack_writeback(folder: Path, dest: Path) -> None:
    """``folder``'s regular files and folders (nothing else: no link, no device) into ``dest``."""
    with tarfile.open(dest, "w:gz") as tar:
        for root, dirs, files in os.walk(folder):
            for name in sorted(dirs) + sorted(files):
                path = Path(root) / name
                if path.is_symlink() or not (path.is_dir() or path.is_file()):
                    continue
                tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)


def upload_writeback(plan: dict[str, Any], workdir: Path) -> bool | None:
    """The writable folder back to the trusted side: True when uploaded, None when the plan has none."""
    item = plan.get("writeback")
    if not item:
        return None
    cap = int((plan.get("limits") or {}).get("writeback", 64 << 20))
    dest = workdir / "writeback.tar.gz"
    try:
        pack_writeback(Path(item["dir"]), dest)
        if dest.stat().st_size > cap:
            say(f"the writable folder packs to {dest.stat().st_size} bytes, over the cap of {cap}: not sent back")
            return False
        http(plan["put"]["writeback"], dest.read_bytes(), tries=5)
        return True
    except OSError as exc:
        say(f"upload of the writable folder failed: {exc}")
        return False
    finally:
        dest.unlink(missing_ok=True)


def linger(plan: dict[str, Any]) -> None:
    deadline = time.monotonic() + float(plan.get("linger_s", 60.0))
    while time.monotonic() < deadline:
        time.sleep(1.0)


def run(plan: dict[str, Any]) -> int:
    workdir = Path(plan.get("workdir", "/tmp/w2s-pod-run"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        prior = http(plan["status_url"], tries=3)
        if prior and json.loads(prior).get("state") == "exited":
            say("this run already finished (the container was restarted): waiting to be terminated")
            linger(plan)
            return 0
    except (OSError, ValueError):
        pass
    log_path = workdir / "log.txt"
    Path(plan["out"]).mkdir(parents=True, exist_ok=True)
    reporter = Reporter(plan, log_path)
    reporter.start()
    code = SETUP_FAILED
    unpacked = False
    with open(log_path, "ab", buffering=0) as log:
        try:
            unpack(plan["inputs"], workdir)
        except (OSError, tarfile.TarError) as exc:
            log.write(f"[w2s] the pod could not fetch its inputs: {exc}\n".encode())
            (Path(plan["out"]) / "error.json").write_text(
                json.dumps({"error": f"the pod could not fetch its inputs: {exc}"}), encoding="utf-8")
        else:
            unpacked = True
            reporter.state = "running"
            say("inputs unpacked; running the command")
            proc = subprocess.Popen(plan["command"], env=plan["env"], cwd=plan.get("cwd") or "/tmp",
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

            def forward(signum: int, _frame: object) -> None:
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    pass

            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, forward)
            code = proc.wait()
            code = 128 - code if code < 0 else code
    reporter.finish()
    with reporter.lock:
        try:
            reporter.files_up(tries=5)
        except OSError as exc:
            say(f"final progress/log upload failed: {exc}")
        done, failed = upload_outputs(plan)
        sent = upload_writeback(plan, workdir) if unpacked else None  # a half-unpacked folder never goes back
        if sent is not None:
            (done if sent else failed).append("writeback")
        reporter.state = "exited"
        try:
            reporter.status({"code": code, "outputs": done, "failed": failed}, tries=8)
        except OSError as exc:
            say(f"the final status could not be uploaded: {exc}")
    say(f"finished with exit code {code}; waiting to be terminated")
    linger(plan)
    return 0


def main() -> int:
    url = os.environ.get(PLAN_ENV, "")
    if not url:
        say(f"{PLAN_ENV} is not set: this command runs as a w2s pod's start command")
        return 2
    try:
        raw = http(url, tries=8)
        plan = json.loads(raw or b"")
    except (OSError, ValueError) as exc:
        say(f"cannot fetch the run's plan: {exc}")
        return 2
    return run(plan)


if __name__ == "__main__":
    sys.exit(main())
