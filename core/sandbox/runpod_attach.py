"""The host-side process that stands for one pod: ``python -m core.sandbox.runpod_attach POD --prefix P --out DIR``.

Why a process (as :mod:`core.sandbox.docker_attach` is for a container): the sandbox interface
promises a ``Popen`` the runner waits on and kills. This one watches the pod through S3 and the
RunPod API and makes it look local:

- the pod's ``events.jsonl`` is appended to ``DIR/events.jsonl`` as it grows (so the runner relays
  progress unchanged), its command output to this process's stdout (the job's log);
- when the pod's ``status.json`` says ``exited``, ``predictions.json``, ``error.json`` and
  ``idea_output.json`` are copied into ``DIR``, the pod is terminated, the run's S3 prefix deleted
  (unless ``keep_s3``; kept, and said, when something could not be copied) and this process exits with
  the pod's exit code;
- with ``--writeback FOLDER`` (an agent's shell call), the pod's tarball of that folder replaces
  ``FOLDER``'s contents once checked (:mod:`core.sandbox.writeback`); a refused or missing one leaves
  it as it was and says why on stderr (exit 1 when the command itself succeeded);
- the pod is terminated, and ``DIR/error.json`` says why in one line, when it has not reported within
  ``start_timeout_s`` of its creation, when it stops reporting for ``heartbeat_timeout_s``, when RunPod
  shows it stopped before its run ended (it died) or no longer knows it, on SIGTERM/SIGINT/SIGHUP
  (exit 143), and when the trusted process that started this one dies;
- the job's ``cost.json`` is refreshed at every look at the pod and at the end.

It holds the operator's RunPod and AWS credentials in its environment (it is trusted, like its parent);
none of them is in its argv.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_bytes
from core.common.errors import UserError
from core.sandbox.runpod_pods import PodApi, RunPodApiError, read_record, terminate, write_job_cost
from core.sandbox.runpod_settings import RunPodSettings, load_settings
from core.sandbox.s3_artifacts import Artifacts, S3Failure
from core.sandbox.writeback import MAX_TARBALL_BYTES, WritebackRefused, apply_writeback

ERROR_FILE = "error.json"
OUTPUTS = ("predictions.json", "error.json", "idea_output.json")
MAX_OUTPUT_BYTES = 256 << 20
CHUNK = 1 << 20
FAILED = 1
STOPPED = 143
API_FAILURES_TOLERATED = 5  # consecutive RunPod API errors before the pod is given up on


def out_key(prefix: str, name: str) -> str:
    return f"{prefix}out/{name}"


def _err(line: str) -> None:
    print(f"[w2s] runpod: {line}", file=sys.stderr, flush=True)


class PodGone(Exception):
    """The run ended without an exit code from the pod; the message says why."""


class Watch:
    """One pod, from creation to termination."""

    def __init__(self, pod_id: str, prefix: str, out: Path, settings: RunPodSettings, created: float) -> None:
        self.pod_id, self.prefix, self.out, self.settings = pod_id, prefix, out, settings
        self.s3 = Artifacts(settings)
        self.api = PodApi(settings)
        self.created = created  # wall clock (the record's), so a restarted watcher keeps the deadline
        self.offsets = {"events": 0, "log": 0}
        self.beat: Any = None
        self.beat_at: float | None = None  # monotonic time the heartbeat last changed
        self.stop = threading.Event()
        self.api_failures = 0

    # -- pulling --------------------------------------------------------------------------------
    def relay(self) -> None:
        """Whatever the pod's progress and log gained since the last call."""
        for name in ("events", "log"):
            while True:
                data = self.s3.read(out_key(self.prefix, "events.jsonl" if name == "events" else "log"),
                                    self.offsets[name], CHUNK)
                if not data:
                    break
                self.offsets[name] += len(data)
                if name == "events":
                    with open(self.out / "events.jsonl", "ab") as fh:
                        fh.write(data)
                else:
                    try:
                        sys.stdout.buffer.write(data)
                        sys.stdout.flush()
                    except (BrokenPipeError, ValueError):
                        pass
                if len(data) < CHUNK:
                    break

    def status(self) -> dict[str, Any] | None:
        raw = self.s3.read(out_key(self.prefix, "status.json"), 0, 64 * 1024)
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:
            return None
        if isinstance(doc, dict) and doc.get("beat") != self.beat:
            self.beat, self.beat_at = doc.get("beat"), time.monotonic()
        return doc if isinstance(doc, dict) else None

    def pull_outputs(self, status: dict[str, Any]) -> list[str]:
        """Copy the pod's outputs into ``out``; the names that could not be copied."""
        missing = []
        for name in OUTPUTS:
            if name not in (status.get("outputs") or []):
                continue
            try:
                data = self.s3.read(out_key(self.prefix, name), 0, MAX_OUTPUT_BYTES + 1)
            except S3Failure as exc:
                _err(str(exc))
                data = None
            if data is None or len(data) > MAX_OUTPUT_BYTES:
                missing.append(name)
                continue
            atomic_write_bytes(self.out / name, data)
        return missing

    # -- the pod ------------------------------------------------------------------------------
    def pod_state(self) -> str:
        """RunPod's word on the pod: its desiredStatus, ``GONE`` when it no longer exists."""
        try:
            pod = self.api.get(self.pod_id)
            self.api_failures = 0
        except RunPodApiError as exc:
            self.api_failures += 1
            if self.api_failures >= API_FAILURES_TOLERATED:
                raise PodGone(f"RunPod stopped answering about pod {self.pod_id}: {exc}") from None
            return "UNKNOWN"
        record = read_record(self.pod_id)
        if record:
            write_job_cost(record)
        if pod is None:
            return "GONE"
        return str(pod.get("desiredStatus") or "UNKNOWN").upper()

    def wait(self) -> dict[str, Any]:
        """Until the pod's final status (returned); PodGone for every other ending."""
        s = self.settings
        next_pod_look = 0.0
        failing_since: float | None = None
        while not self.stop.is_set():
            try:
                status = self.status()
                if status is not None:
                    self.relay()
                failing_since = None
            except S3Failure:  # a passing S3 fault is waited out, a lasting one ends the run
                status = None
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > s.heartbeat_timeout_s:
                    raise
            if status is not None and status.get("state") == "exited":
                return status
            now = time.monotonic()
            if now >= next_pod_look:
                next_pod_look = now + s.pod_poll_s
                state = self.pod_state()
                if state in ("EXITED", "TERMINATED", "GONE"):
                    final = self.status()  # it may have finished between the two looks
                    if final is not None and final.get("state") == "exited":
                        self.relay()
                        return final
                    what = "no longer exists" if state == "GONE" else f"stopped ({state})"
                    raise PodGone(f"the pod {self.pod_id} {what} before its run finished (it died or was "
                                  "terminated outside w2s)")
            if self.beat_at is None:
                if time.time() - self.created > s.start_timeout_s:
                    raise PodGone(f"the pod {self.pod_id} did not start within {s.start_timeout_s:.0f} s "
                                  "(no report from it): terminated")
            elif now - self.beat_at > s.heartbeat_timeout_s:
                raise PodGone(f"the pod {self.pod_id} stopped reporting for {s.heartbeat_timeout_s:.0f} s: terminated")
            self.stop.wait(s.poll_s)
        raise PodGone("stopped by a signal")

    def pull_writeback(self, status: dict[str, Any], folder: Path) -> str | None:
        """The pod's copy of ``folder`` in place of the local one; None, or why it did not come back."""
        if "writeback" not in (status.get("outputs") or []):
            return "the pod did not send the folder back"
        try:
            data = self.s3.read(out_key(self.prefix, "writeback.tar.gz"), 0, MAX_TARBALL_BYTES + 1)
        except S3Failure as exc:
            return str(exc)
        if data is None:
            return "the pod's tarball of the folder is missing"
        try:
            apply_writeback(data, folder)
        except WritebackRefused as exc:
            return f"refused: {exc}"
        return None

    def write_error(self, message: str) -> None:
        atomic_write_bytes(self.out / ERROR_FILE, json.dumps({"error": message}).encode())

    def finish(self, reason: str) -> None:
        terminate(self.settings, self.pod_id, reason, say=_err)


def _watch_parent(watch: Watch, parent: int) -> None:
    while not watch.stop.wait(0.5):
        if os.getppid() != parent:  # the trusted process died: nothing else will terminate the pod
            _err("the trusted process that started this pod is gone: terminating the pod")
            watch.stop.set()
            return


def run(args: argparse.Namespace) -> int:
    # the runpod SDK takes ~2 s to import: load it beside the first S3 reads, not in front of them
    threading.Thread(target=__import__, args=("runpod",), daemon=True).start()
    settings = load_settings()
    out = Path(args.out)
    watch = Watch(args.pod, args.prefix, out, settings, float(args.created))

    def on_signal(signum: int, _frame: object) -> None:
        watch.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    threading.Thread(target=_watch_parent, args=(watch, os.getppid()), daemon=True).start()
    try:
        status = watch.wait()
    except PodGone as exc:
        stopped = watch.stop.is_set()
        message = str(exc)
        if not stopped:
            _err(message)
            watch.write_error(message)
        watch.finish("stopped by w2s" if stopped else message)
        try:
            watch.relay()
        except S3Failure:
            pass
        return STOPPED if stopped else FAILED
    except S3Failure as exc:  # the trusted side cannot read the run's objects: say so, keep them
        watch.write_error(f"{exc} (the pod was terminated; its objects stay under {watch.s3.where(args.prefix)})")
        _err(str(exc))
        watch.finish(f"S3 unreadable: {exc}")
        return FAILED
    missing = watch.pull_outputs(status)
    code = int(status.get("code", FAILED))
    failed = [name for name in status.get("failed") or [] if name != "writeback"] + missing
    if args.writeback:
        why = watch.pull_writeback(status, Path(args.writeback))
        if why is not None:
            _err(f"the pod's changes to {args.writeback} were not brought back ({why}); the folder is as it was")
            code = code or FAILED
    watch.finish(f"finished (exit code {code})")
    if failed:
        message = (f"the pod's {', '.join(failed)} did not arrive through S3; what did arrive stays under "
                   f"{watch.s3.where(args.prefix)}")
        _err(message)
        if "predictions.json" in failed or "error.json" in failed:
            watch.write_error(message)
            return FAILED if code == 0 else code
        return code
    if not settings.keep_s3:
        watch.s3.delete_prefix(args.prefix)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.sandbox.runpod_attach", allow_abbrev=False)
    parser.add_argument("pod")
    parser.add_argument("--prefix", required=True, help="the run's S3 prefix (ends with /)")
    parser.add_argument("--out", required=True, help="the local output folder the runner reads")
    parser.add_argument("--created", required=True, help="when the pod was created (epoch seconds)")
    parser.add_argument("--writeback", help="the local folder the pod's writable copy replaces when it ends")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as exc:  # a settings file changed under a running job: say so, end the pod
        _err(str(exc))
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
