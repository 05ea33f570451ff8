"""The remote sandbox: the idea runs on a RunPod pod; the trusted side talks to it only through S3.

How a run goes (``W2S_SANDBOX=runpod``, set by the runpod executor; the trusted job process itself
runs here, as a local job):

1. :meth:`RunPodSandbox.launch` maps the spec to the pod (:mod:`core.sandbox.pod_plan`), uploads the
   read-only folders that travel (the staged label-free inputs, the ideas) as tarballs under a fresh
   prefix ``w2s/<workspace tag>/<job>/a<attempt>-<random>/`` with the operator's credentials, and
   writes ``in/plan.json``: the command, its environment (the spec's: no token, no secret) and one
   pre-signed URL per object the pod may read or write;
2. it creates the pod (:func:`core.sandbox.runpod_pods.create_pod`: image, GPU types in order, cloud
   type, volume, price and caps) whose environment is the plan's GET URL, ``PYTHONPATH`` and
   ``PYTHONUNBUFFERED``, and whose start command is ``<python> -m core.sandbox.pod_bootstrap``. No AWS
   key, no RunPod key, no Anthropic key reaches the pod, its name, its command or any argv;
3. it returns the ``Popen`` of :mod:`core.sandbox.runpod_attach`, which relays the pod's progress into
   the local ``out`` folder and its log into the job's, copies the predictions back, terminates the pod
   and exits with the pod's exit code; the runner then validates the predictions and the referee
   scores them here, as for every other sandbox. Labels never leave this machine;
4. :meth:`RunPodSandbox.terminate` terminates the pod even when the attach process was killed.

A failure before the pod exists (S3 unreachable, an upload refused, no GPU type affordable) is one
line and no pod; no capacity for long enough is a :class:`~core.sandbox.runpod_pods.PodCapacityError`,
which the job reports as transient.

An agent's shell call (a spec with no output folder and the agent's idea folder writable) is one pod
per call: the idea folder travels as an input, the pod sends its copy back when the command ends and
the attach process puts it in place of the local folder (:mod:`core.sandbox.writeback`). The agent loop
and its Anthropic key stay here: the attach process does not even inherit the key.

UNVERIFIED: real RunPod, real S3 and GPUs. The tests run this against ``moto`` (a real S3 API) and a
local stand-in of RunPod's GraphQL API whose pods are containers on a local Docker engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.common.errors import UserError
from core.sandbox.base import Sandbox, SandboxSpec, SandboxUnavailable, kill_tree
from core.sandbox.pod_plan import PodPlan, build_plan
from core.sandbox.runpod_pods import create_pod, terminate
from core.sandbox.runpod_settings import RunPodSettings, load_settings, workspace_tag
from core.sandbox.s3_artifacts import Artifacts, temp_tarball
from core.sandbox.writeback import MAX_TARBALL_BYTES

OUTPUTS = ("predictions.json", "error.json", "idea_output.json")
POD_ENV_BASE = {"PYTHONUNBUFFERED": "1"}


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@dataclass
class _Pod:
    id: str
    prefix: str
    scratch: Path | None = None  # the attach process's output folder when the spec named none


def run_prefix(job: str | None, attempt: str | None) -> str:
    """A fresh S3 prefix for one sandboxed run (a retried attempt, or a second run of one job, gets its own)."""
    who = f"{job}/a{attempt or 0}" if job else "runs"
    return f"w2s/{workspace_tag()}/{who}-{secrets.token_hex(4)}/"


def pod_plan_document(plan: PodPlan, s3: Artifacts, prefix: str, settings: RunPodSettings) -> dict[str, Any]:
    """What the bootstrap reads (see :mod:`core.sandbox.pod_bootstrap`): the plan with its URLs."""
    out = f"{prefix}out/"
    put = {name: s3.put_url(out + name) for name in OUTPUTS}
    put.update(status=s3.put_url(out + "status.json"), events=s3.put_url(out + "events.jsonl"),
               log=s3.put_url(out + "log"))
    writeback = None
    if plan.writeback is not None:
        put["writeback"] = s3.put_url(out + "writeback.tar.gz")
        writeback = {"dir": plan.writeback.pod_path}
    return {
        "version": 1,
        "workdir": str(Path(plan.out).parent),
        "inputs": [{"name": u.name, "dir": u.pod_path, "url": s3.get_url(f"{prefix}in/{u.name}.tar.gz")}
                   for u in plan.uploads],
        "command": plan.command,
        "env": plan.env,
        "cwd": plan.cwd,
        "out": plan.out,
        "status_url": s3.get_url(out + "status.json"),
        "put": put,
        "upload_every_s": settings.upload_every_s,
        "linger_s": settings.linger_s,
        "limits": {"events": 16 << 20, "log": 32 << 20, "outputs": 256 << 20, "writeback": MAX_TARBALL_BYTES},
        "writeback": writeback,
    }


class RunPodSandbox(Sandbox):
    name = "runpod"
    isolated = True  # the idea runs on another machine that holds no label, token or secret

    def __init__(self, settings: RunPodSettings | None = None) -> None:
        self._settings = settings
        self._runs: weakref.WeakKeyDictionary[subprocess.Popen[bytes], _Pod] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    @property
    def settings(self) -> RunPodSettings:
        return self._settings or load_settings()

    def problem(self) -> str | None:
        try:
            settings = self.settings
        except UserError as exc:
            return str(exc)
        missing = settings.missing()
        if missing:
            return "runpod: not configured: set " + ", ".join(missing)
        return Artifacts(settings).check()

    def argv(self, spec: SandboxSpec) -> list[str]:
        """Shown only (the run needs uploads first): the command the pod's bootstrap will run."""
        settings = self.settings
        return build_plan(spec, repo_root(), python=settings.python, code_dir=settings.code_dir).command

    # -- launch -------------------------------------------------------------------------------
    def _upload(self, plan: PodPlan, s3: Artifacts, prefix: str, settings: RunPodSettings) -> str:
        """Every travelling folder, then the plan; the plan's GET URL."""
        for upload in plan.uploads:
            tarball = temp_tarball(upload.source, upload.exclude)
            try:
                s3.put_file(f"{prefix}in/{upload.name}.tar.gz", tarball)
            finally:
                tarball.unlink(missing_ok=True)
        document = pod_plan_document(plan, s3, prefix, settings)
        s3.put_bytes(f"{prefix}in/plan.json", json.dumps(document).encode())
        return s3.get_url(f"{prefix}in/plan.json")

    def launch(self, spec: SandboxSpec, stdout: int | IO[Any] | None, stderr: int | IO[Any] | None,
               stdin: int | IO[Any] | None) -> subprocess.Popen[bytes]:
        threading.Thread(target=__import__, args=("runpod",), daemon=True).start()  # ~2 s: beside the uploads
        settings = self.settings
        plan = build_plan(spec, repo_root(), python=settings.python, code_dir=settings.code_dir)
        job, attempt = os.environ.get("W2S_JOB_ID") or None, os.environ.get("W2S_JOB_ATTEMPT") or None
        prefix = run_prefix(job, attempt)
        s3 = Artifacts(settings)
        started = time.monotonic()
        try:
            plan_url = self._upload(plan, s3, prefix, settings)
        except SandboxUnavailable as exc:
            s3.delete_prefix(prefix)
            raise SandboxUnavailable(f"runpod: the run's inputs could not be uploaded, no pod was started: {exc}") from None

        def say(line: str) -> None:
            print(line, file=sys.stderr, flush=True)

        uploaded = time.monotonic()
        env = {**POD_ENV_BASE, "W2S_POD_PLAN_URL": plan_url, "PYTHONPATH": settings.code_dir}
        gpus = int(os.environ.get("W2S_RUNPOD_GPU_COUNT", "1") or 1)
        try:
            record = create_pod(settings, job=job, attempt=attempt, run_dir=os.environ.get("W2S_RUN_DIR"),
                                prefix=prefix, env=env, docker_args=f"{settings.python} -m core.sandbox.pod_bootstrap",
                                gpu_count=gpus, say=say)
        except BaseException:
            s3.delete_prefix(prefix)
            raise
        say(f"[w2s] runpod: pod {record['id']} ({record['gpu_type']}, ${record['cost_per_hr'] or 0:.2f}/h) "
            f"created (inputs uploaded in {uploaded - started:.1f} s, pod asked for in "
            f"{time.monotonic() - uploaded:.1f} s); waiting for it to report")
        scratch = None if plan.host_out is not None else Path(tempfile.mkdtemp(prefix="w2s-pod-out-"))
        argv = [sys.executable, "-m", "core.sandbox.runpod_attach", record["id"], "--prefix", prefix,
                "--out", str(plan.host_out or scratch), "--created", f"{record['created']:.3f}"]
        if plan.writeback is not None:
            argv += ["--writeback", str(plan.writeback.source)]
        env_attach = {**{k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")},
                      "PYTHONPATH": str(repo_root()), "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            proc = subprocess.Popen(argv, env=env_attach, cwd=str(repo_root()), stdin=subprocess.DEVNULL,
                                    stdout=stdout, stderr=stderr, start_new_session=True, close_fds=True)
        except OSError as exc:
            terminate(settings, record["id"], "its attach process could not start", say=say)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            raise SandboxUnavailable(f"runpod: cannot start the pod's attach process: {exc}") from None
        with self._lock:
            self._runs[proc] = _Pod(record["id"], prefix, scratch)
        return proc

    def pod_of(self, proc: subprocess.Popen[bytes]) -> str | None:
        """The id of the pod ``proc`` (from :meth:`launch`) stands for."""
        with self._lock:
            run = self._runs.get(proc)
        return run.id if run else None

    def terminate(self, proc: subprocess.Popen[bytes], grace: float = 0.0) -> None:
        """Stop the attach process (it terminates the pod on SIGTERM), then terminate the pod
        whatever happened to that process."""
        kill_tree(proc, grace)
        with self._lock:
            run = self._runs.pop(proc, None)
        if run is None:
            return
        if run.scratch is not None:
            shutil.rmtree(run.scratch, ignore_errors=True)
        from core.sandbox.runpod_pods import read_record

        record = read_record(run.id)
        if record is not None and record.get("ended"):
            return
        terminate(self.settings, run.id, "its run ended", say=lambda line: print(line, file=sys.stderr, flush=True))


def runpod_report() -> tuple[bool, str]:
    """``w2s doctor``'s line: what is missing, or that S3 and the API answer."""
    try:
        settings = load_settings()
    except UserError as exc:
        return False, str(exc)
    missing = settings.missing()
    if missing:
        return False, "not configured: set " + ", ".join(missing)
    problem = Artifacts(settings).check()
    if problem:
        return False, problem
    from core.sandbox.runpod_pods import PodApi

    try:
        pods = PodApi(settings).ours(workspace_tag())
    except SandboxUnavailable as exc:
        return False, str(exc)
    return True, (f"works (bucket s3://{settings.bucket}, image {settings.image}, GPU types "
                  f"{', '.join(settings.gpu_types)} up to ${settings.max_price:.2f}/h; {len(pods)} pod(s) of this "
                  "workspace running)")
