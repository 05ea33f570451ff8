"""Pods on RunPod: create (GPU types in order, prices and caps checked), find by tag, terminate, bill.

Why here and not in the executor: the pod is created by the trusted job process (the sandbox's
``launch``), watched by its attach process and reconciled by the executor after a service restart;
all three use this module, through the ``runpod`` SDK (``RUNPOD_API_BASE_URL`` is honoured by it).

- **Tags.** A pod's name is ``w2s-<workspace tag>-<job>-a<attempt>`` (``w2s-<tag>-run-<random>`` for a
  run that is not a job): no secret, no path, no user name. Beside it, the trusted side keeps a record
  per pod in ``<workspace>/.w2s/runpod/pods/<id>.json``: the job, the trusted process that owns it
  (pid:start time), its GPU type, $/hour, creation and end time. A pod of this workspace whose owner is
  gone is an orphan: the executor terminates it.
- **Capacity and caps.** GPU types are tried in the configured order; a type dearer than ``max_price``,
  or that would take the workspace or the job over its $/hour cap, is skipped; a capacity error falls
  through to the next type. When nothing fits *now* (capacity, the workspace's pod or $/hour cap) the
  caller's process backs off (15 s doubling to 2 min, for ``capacity_wait_s`` in all), then fails with
  :class:`PodCapacityError`, which the job reports as transient (the scheduler retries it later).
  When nothing can ever fit (every type over ``max_price``) it fails at once, saying so. The count and
  the creation happen under a lock file, so two jobs of one workspace never both take the last slot.
- **Money.** Cost accrues from creation to termination at the pod's ``costPerHr`` (an upper bound:
  RunPod bills from when the pod runs). Every termination goes through :func:`terminate` (three tries;
  a pod that cannot be terminated is said loudly and stays recorded, so a later reconcile retries).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_json
from core.common.process import process_alive
from core.common.workspace import paths
from core.sandbox.base import SandboxUnavailable
from core.sandbox.runpod_settings import RunPodSettings, workspace_tag

CAPACITY_MARKERS = ("no longer any instances available", "does not have the resources", "no instances",
                    "not enough", "insufficient capacity", "out of capacity")
NAME_RE = re.compile(r"^w2s-(?P<tag>[0-9a-f]{8})-(?:(?P<run>run-[0-9a-f]+)|(?P<job>.+)-a(?P<attempt>\d+))$")
SAFE_VALUE = re.compile(r'^[^"\\\n\r]*$')  # the SDK writes values into GraphQL text unescaped
Say = Callable[[str], None]


class PodCapacityError(SandboxUnavailable):
    """No pod could be had for long enough (capacity, or this workspace's caps): worth retrying later."""

    transient = True


class RunPodApiError(SandboxUnavailable):
    """The RunPod API refused or did not answer; the message says which call and why."""


# --------------------------------------------------------------------------------------------
# names and records


def pod_name(tag: str, job: str | None, attempt: str | int | None) -> str:
    if not job:
        return f"w2s-{tag}-run-{secrets.token_hex(4)}"
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", job)
    return f"w2s-{tag}-{clean}-a{int(attempt or 0)}"


def parse_name(name: str) -> dict[str, str] | None:
    """``{"tag", "job", "attempt"}`` of a w2s pod name (job empty for a run), or None for anything else."""
    found = NAME_RE.match(name or "")
    if not found:
        return None
    return {"tag": found["tag"], "job": found["job"] or "", "attempt": found["attempt"] or ""}


def records_dir(root: Path | None = None) -> Path:
    return (root or paths().root) / ".w2s" / "runpod" / "pods"


def read_record(pod_id: str, root: Path | None = None) -> dict[str, Any] | None:
    try:
        data = json.loads((records_dir(root) / f"{pod_id}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_record(record: dict[str, Any], root: Path | None = None) -> None:
    atomic_write_json(records_dir(root) / f"{record['id']}.json", record)


def all_records(root: Path | None = None) -> list[dict[str, Any]]:
    out = []
    folder = records_dir(root)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = read_record(path.stem, root)
        if record:
            out.append(record)
    return out


def owner_stamp() -> str:
    """This process as a record's owner: pid and start time (a recycled pid is never mistaken)."""
    import psutil

    return f"{os.getpid()}:{psutil.Process().create_time():.3f}"


def owner_alive(record: dict[str, Any]) -> bool:
    pid, _, ctime = str(record.get("owner", "")).partition(":")
    try:
        return process_alive(int(pid), float(ctime) if ctime else None)
    except ValueError:
        return False


def accrued_usd(record: dict[str, Any], now: float | None = None) -> float:
    end = record.get("ended") or (now if now is not None else time.time())
    return max(0.0, float(end) - float(record.get("created") or end)) / 3600.0 * float(record.get("cost_per_hr") or 0.0)


def end_record(pod_id: str, reason: str, root: Path | None = None) -> dict[str, Any] | None:
    """Mark the pod terminated now (once), and refresh its job's ``cost.json``."""
    record = read_record(pod_id, root)
    if record is None:
        return None
    if not record.get("ended"):
        record.update(ended=time.time(), ended_reason=reason)
        write_record(record, root)
    write_job_cost(record, root)
    return record


def job_cost(job: str, root: Path | None = None, now: float | None = None, run_dir: str = "") -> dict[str, Any]:
    """What ``job``'s pods (a run without a job: the pods of its ``run_dir``) cost so far: total and per pod."""
    pods = []
    for record in all_records(root):
        if (record.get("job") or "") != job or (not job and record.get("run_dir") != run_dir):
            continue
        pods.append({"id": record["id"], "gpu_type": record.get("gpu_type"), "cost_per_hr": record.get("cost_per_hr"),
                     "created": record.get("created"), "ended": record.get("ended"),
                     "usd": round(accrued_usd(record, now), 6)})
    return {"usd": round(sum(p["usd"] for p in pods), 6), "pods": pods, "updated": time.time()}


def write_job_cost(record: dict[str, Any], root: Path | None = None) -> None:
    """``cost.json`` in the pod's run folder (what ``w2s jobs show`` and the UIs read)."""
    run_dir, job = str(record.get("run_dir") or ""), str(record.get("job") or "")
    if not run_dir or not Path(run_dir).is_dir():
        return
    try:
        atomic_write_json(Path(run_dir) / "cost.json", job_cost(job, root, run_dir=run_dir), indent=None)
    except OSError:
        pass


@contextlib.contextmanager
def workspace_lock(root: Path | None = None) -> Iterator[None]:
    """One pod creation at a time per workspace (counting the caps and creating are one step)."""
    path = (root or paths().root) / ".w2s" / "runpod" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# the API


def is_capacity_error(message: str) -> bool:
    text = message.lower()
    return any(marker in text for marker in CAPACITY_MARKERS)


class PodApi:
    """The few RunPod calls w2s makes, each failure one line (the API key is never in a message)."""

    def __init__(self, settings: RunPodSettings) -> None:
        if not settings.api_key:
            raise RunPodApiError("RUNPOD_API_KEY is not set (the environment of the process that talks to RunPod)")
        self.settings = settings
        self._prices: dict[str, float | None] = {}

    def _sdk(self) -> Any:
        import runpod  # type: ignore[import-untyped]

        runpod.api_key = self.settings.api_key
        return runpod

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SandboxUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - requests, the SDK's own errors: one line each
            message = str(getattr(exc, "message", "") or exc).replace(self.settings.api_key, "***")
            where = os.environ.get("RUNPOD_API_BASE_URL", "https://api.runpod.io")
            raise RunPodApiError(f"RunPod API ({where}) {what}: {message[:300] or type(exc).__name__}") from None

    def get(self, pod_id: str) -> dict[str, Any] | None:
        """The pod as RunPod describes it; None when it no longer exists."""
        sdk = self._sdk()
        pod = self._call(f"pod {pod_id}", lambda: sdk.get_pod(pod_id))
        return pod if isinstance(pod, dict) else None

    def pods(self) -> list[dict[str, Any]]:
        sdk = self._sdk()
        found = self._call("listing pods", sdk.get_pods)
        return [p for p in found or [] if isinstance(p, dict)]

    def ours(self, tag: str) -> list[dict[str, Any]]:
        """This workspace's pods (by name) that RunPod still lists."""
        return [p for p in self.pods() if (parse_name(str(p.get("name", ""))) or {}).get("tag") == tag]

    def terminate(self, pod_id: str, tries: int = 3) -> bool:
        """Terminate (True once it is gone); a pod RunPod no longer knows counts as gone."""
        sdk = self._sdk()
        for attempt in range(tries):
            try:
                self._call(f"terminating pod {pod_id}", lambda: sdk.terminate_pod(pod_id))
                return True
            except RunPodApiError as exc:
                text = str(exc).lower()
                if "not found" in text or "does not exist" in text or "no pod" in text:
                    return True
                if attempt == tries - 1:
                    return False
                time.sleep(1.0 + attempt)
        return False

    def price(self, gpu_type: str) -> float | None:
        """The type's $/hour on the configured cloud (None: RunPod did not say); RunPodApiError for an
        unknown type."""
        if gpu_type not in self._prices:
            sdk = self._sdk()
            info = self._call(f"GPU type {gpu_type!r}", lambda: sdk.get_gpu(gpu_type))
            cloud = self.settings.cloud_type
            candidates = []
            if cloud in ("SECURE", "ALL"):
                candidates.append(info.get("securePrice"))
            if cloud in ("COMMUNITY", "ALL"):
                candidates.append(info.get("communityPrice"))
            if cloud == "ALL":
                candidates.append((info.get("lowestPrice") or {}).get("uninterruptablePrice"))
            known = [float(p) for p in candidates if isinstance(p, int | float) and p > 0]
            self._prices[gpu_type] = min(known) if known else None
        return self._prices[gpu_type]

    def create(self, name: str, gpu_type: str, env: dict[str, str], docker_args: str, gpu_count: int) -> dict[str, Any]:
        for key, value in [*env.items(), ("name", name), ("command", docker_args), ("image", self.settings.image)]:
            if not SAFE_VALUE.match(key) or not SAFE_VALUE.match(str(value)):
                raise SandboxUnavailable(f"runpod: {key}: quotes, backslashes and newlines cannot reach a pod")
        sdk = self._sdk()
        s = self.settings
        return dict(self._call(f"creating a {gpu_type} pod", lambda: sdk.create_pod(
            name, image_name=s.image, gpu_type_id=gpu_type, cloud_type=s.cloud_type, support_public_ip=False,
            start_ssh=False, gpu_count=max(1, gpu_count), volume_in_gb=s.volume_gb,
            container_disk_in_gb=s.disk_gb, docker_args=docker_args, env=env)))


# --------------------------------------------------------------------------------------------
# creating one pod


def _cost_of(pod: dict[str, Any]) -> float:
    try:
        return float(pod.get("costPerHr") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _try_types(api: PodApi, settings: RunPodSettings, *, name: str, job: str | None, env: dict[str, str],
               docker_args: str, gpu_count: int, tag: str) -> tuple[dict[str, Any] | None, list[str], bool]:
    """One pass over the GPU types. (pod, reasons, worth waiting)."""
    ours = api.ours(tag)
    mine = [p for p in ours if job and (parse_name(str(p.get("name"))) or {}).get("job") == job]
    stale = {str(p["id"]) for p in mine if str(p.get("name")) != name}
    for pod_id in stale:  # an earlier attempt's pod: a job never runs two attempts at once
        api.terminate(pod_id)
        end_record(pod_id, "an earlier attempt's pod, found at a new attempt")
    mine = [p for p in mine if str(p["id"]) not in stale]
    ours = [p for p in ours if str(p["id"]) not in stale]
    spend = sum(_cost_of(p) for p in ours)
    job_spend = sum(_cost_of(p) for p in mine)
    if len(ours) >= settings.max_pods:
        return None, [f"this workspace already runs {len(ours)} pod(s) (max_pods {settings.max_pods})"], True
    if len(mine) >= settings.job_max_pods:
        return None, [f"this job already runs {len(mine)} pod(s) (job_max_pods {settings.job_max_pods})"], True
    reasons: list[str] = []
    wait = False
    for gpu in settings.gpu_types:
        price = api.price(gpu)
        if price is not None and price > settings.max_price:
            reasons.append(f"{gpu}: ${price:.2f}/h is over max_price ${settings.max_price:.2f}")
            continue
        if price is not None and job_spend + price > settings.job_max_usd_per_hour:
            reasons.append(f"{gpu}: ${price:.2f}/h would take the job over job_max_usd_per_hour "
                           f"${settings.job_max_usd_per_hour:.2f}")
            wait = wait or bool(mine)
            continue
        if price is not None and spend + price > settings.max_usd_per_hour:
            reasons.append(f"{gpu}: ${price:.2f}/h would take this workspace over max_usd_per_hour "
                           f"${settings.max_usd_per_hour:.2f}")
            wait = True
            continue
        try:
            pod = api.create(name, gpu, env, docker_args, gpu_count)
        except RunPodApiError as exc:
            if not is_capacity_error(str(exc)):
                raise
            reasons.append(f"{gpu}: no capacity")
            wait = True
            continue
        return {**pod, "gpu_type": gpu, "price": price}, reasons, False
    return None, reasons, wait


def create_pod(settings: RunPodSettings, *, job: str | None, attempt: str | int | None, run_dir: str | None,
               prefix: str, env: dict[str, str], docker_args: str, gpu_count: int = 1,
               say: Say | None = None) -> dict[str, Any]:
    """A running pod's record (see the module docstring for the order, the caps and the back-off)."""
    tell = say or (lambda line: None)
    api = PodApi(settings)
    tag = workspace_tag()
    name = pod_name(tag, job, attempt)
    deadline = time.monotonic() + settings.capacity_wait_s
    delay = 15.0
    while True:
        with workspace_lock():
            pod, reasons, wait = _try_types(api, settings, name=name, job=job, env=env, docker_args=docker_args,
                                            gpu_count=gpu_count, tag=tag)
            if pod is not None:
                record = {"id": str(pod["id"]), "name": name, "job": job or "", "attempt": str(attempt or ""),
                          "run_dir": run_dir or "", "owner": owner_stamp(), "gpu_type": pod["gpu_type"],
                          "cost_per_hr": pod["price"], "created": time.time(), "ended": None, "prefix": prefix}
                write_record(record)
        if pod is not None:
            for line in reasons:
                tell(f"[w2s] runpod: skipped {line}")
            described = api.get(record["id"]) or {}
            cost = _cost_of(described) or record["cost_per_hr"]
            if cost and cost > settings.max_price:
                api.terminate(record["id"])
                end_record(record["id"], f"${cost:.2f}/h over max_price")
                raise SandboxUnavailable(f"runpod: pod {record['id']} ({record['gpu_type']}) costs ${cost:.2f}/h, "
                                         f"over max_price ${settings.max_price:.2f}: terminated")
            record["cost_per_hr"] = cost
            write_record(record)
            write_job_cost(record)
            return record
        summary = "; ".join(reasons) or "no GPU type configured"
        if not wait:
            raise SandboxUnavailable(f"runpod: no GPU type can be used: {summary}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise PodCapacityError(f"runpod: no pod after {settings.capacity_wait_s:.0f} s: {summary}")
        pause = min(delay, left)
        tell(f"[w2s] runpod: no pod yet ({summary}); trying again in {pause:.0f} s")
        time.sleep(pause)
        delay = min(delay * 2, 120.0)


def terminate(settings: RunPodSettings, pod_id: str, reason: str, say: Say | None = None) -> bool:
    """Terminate the pod and close its record; a failure is said (it may still bill) and left for a
    later reconcile."""
    try:
        done = PodApi(settings).terminate(pod_id)
    except RunPodApiError as exc:
        done, why = False, str(exc)
    else:
        why = "the API did not confirm"
    if done:
        end_record(pod_id, reason)
        return True
    if say:
        say(f"[w2s] runpod: could NOT terminate pod {pod_id} ({why}); it may still bill: the service "
            "retries, or terminate it in the RunPod console")
    return False
