"""A local stand-in for RunPod's GraphQL API whose pods are real containers on the local Docker engine.

Why: no RunPod account is reachable from the tests, yet the executor must be exercised through the real
``runpod`` SDK (which honours ``RUNPOD_API_BASE_URL``) down to a real pod running the real bootstrap.
It speaks the subset of the API the SDK sends: ``gpuTypes`` (one type, with prices), the
``podFindAndDeployOnDemand`` mutation, the ``pod`` query, ``myself { pods }`` and ``podTerminate``;
anything else is a GraphQL error. Requests need ``Authorization: Bearer <api key>`` (else 401).

A pod is a container of the requested image (``image_map`` may rename it: the tests use the offline
image) running the pod's ``dockerArgs`` with the pod's environment, as the image's non-root user,
read-only root, private ``/tmp``, and the host's network (to reach the S3 stand-in on 127.0.0.1). What
the production image bakes in is mounted read-only: the project's Python installation at its own
paths and the library (``core/``) at ``code_dir/core``, with the demo generator hidden (the production
image leaves it out).

Faults to inject: ``no_capacity`` (GPU type ids answered with RunPod's capacity error), ``never_start``
(new pods are accepted but no container ever starts), :meth:`kill` (the container dies mid-run).

Every request is appended to ``log_path`` as one JSON line: the path, the headers except
``Authorization`` (which is the one place the API key belongs: recorded as ``auth_ok``) and the body.
Tests scan that file for secrets. Billing: a pod bills from creation to termination (``billing``).
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CAPACITY_MESSAGE = ("There are no longer any instances available with the requested specifications. "
                    "Please refresh and try again.")
DEFAULT_PRICES = {"NVIDIA GeForce RTX 4090": 0.69, "NVIDIA RTX A6000": 0.79, "NVIDIA A40": 0.44,
                  "NVIDIA H100 80GB HBM3": 2.99}


def _field(query: str, name: str) -> str | None:
    found = re.search(rf'\b{name}: "((?:[^"\\]|\\.)*)"', query)
    if found:
        return found.group(1)
    found = re.search(rf"\b{name}: ([A-Za-z0-9_.]+)", query)
    return found.group(1) if found else None


class FakeRunPod:
    """The stand-in server; ``url`` goes into ``RUNPOD_API_BASE_URL``."""

    def __init__(self, docker_client: Any, api_key: str, log_path: Path, *, image_map: Mapping[str, str] | None = None,
                 code_dir: str = "/opt/w2s", prices: Mapping[str, float] | None = None) -> None:
        self.docker = docker_client
        self.api_key = api_key
        self.log_path = log_path
        self.image_map = dict(image_map or {})
        self.code_dir = code_dir
        self.prices = dict(prices or DEFAULT_PRICES)
        self.id = secrets.token_hex(4)
        self.no_capacity: set[str] = set()
        self.never_start = False
        self.pods: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        self.empty = Path(tempfile.mkdtemp(prefix="runpod-standin-empty-"))
        self.empty.chmod(0o755)
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                auth_ok = self.headers.get("Authorization") == f"Bearer {stand_in.api_key}"
                stand_in._record(self.path, dict(self.headers.items()), body, auth_ok)
                if not auth_ok:
                    self._reply(401, {"errors": [{"message": "Unauthorized"}]})
                    return
                try:
                    query = json.loads(body).get("query", "")
                    answer = stand_in.answer(query)
                except Exception as exc:  # noqa: BLE001 - a stand-in bug is a GraphQL error, visibly
                    answer = {"errors": [{"message": f"stand-in: {type(exc).__name__}: {exc}"}]}
                self._reply(200, answer)

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- life ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeRunPod:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for container in self.containers():
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(self.empty, ignore_errors=True)

    # -- what tests look at -------------------------------------------------------------------------
    def containers(self) -> list[Any]:
        if self.docker is None:  # a stand-in without an engine: pods never start
            return []
        return list(self.docker.containers.list(all=True, filters={"label": f"w2s.stand-in={self.id}"}))

    def live(self) -> list[dict[str, Any]]:
        """Pods that are not terminated (they bill)."""
        with self.lock:
            return [dict(p) for p in self.pods.values() if p["terminated"] is None]

    billing = live

    def requests(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text(encoding="utf-8").splitlines() if line]

    def created(self) -> list[dict[str, Any]]:
        """The pods created so far (name, GPU type, env), in order."""
        with self.lock:
            return sorted((dict(p) for p in self.pods.values()), key=lambda p: p["created"])

    def kill(self, pod_id: str) -> None:
        """The pod's container dies (SIGKILL), as a machine that fails mid-run."""
        with self.lock:
            container_id = self.pods[pod_id]["container"]
        if container_id:
            self.docker.containers.get(container_id).kill()

    def add_pod(self, name: str, gpu_type: str = "NVIDIA A40") -> str:
        """A pod that w2s did not create in this run (e.g. left by a crashed service); never starts."""
        with self.lock:
            pod_id = secrets.token_hex(7)
            self.pods[pod_id] = self._new(pod_id, name, "none", gpu_type, {}, "", None)
            return pod_id

    # -- the API ------------------------------------------------------------------------------------
    def _record(self, path: str, headers: dict[str, str], body: str, auth_ok: bool) -> None:
        kept = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        line = json.dumps({"time": time.time(), "path": path, "headers": kept, "auth_ok": auth_ok, "body": body})
        with self.lock, open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def answer(self, query: str) -> dict[str, Any]:
        if "podFindAndDeployOnDemand" in query:
            return self._create(query)
        if "podTerminate" in query:
            pod_id = _field(query, "podId") or ""
            self.terminate(pod_id)
            return {"data": {"podTerminate": None}}
        if re.search(r"\bpod\s*\(\s*input", query):
            pod_id = _field(query, "podId") or ""
            with self.lock:
                pod = self.pods.get(pod_id)
                return {"data": {"pod": self._view(pod) if pod and pod["terminated"] is None else None}}
        if "myself" in query and "pods" in query:
            with self.lock:
                return {"data": {"myself": {"pods": [self._view(p) for p in self.pods.values()
                                                     if p["terminated"] is None]}}}
        if "gpuTypes" in query:
            wanted = _field(query, "id")
            types = [t for t in self.prices if wanted in (None, t)]
            return {"data": {"gpuTypes": [self._gpu(t) for t in types]}}
        return {"errors": [{"message": "stand-in: unsupported query"}]}

    def _gpu(self, gpu: str) -> dict[str, Any]:
        price = self.prices[gpu]
        return {"id": gpu, "displayName": gpu, "memoryInGb": 24, "maxGpuCount": 8, "manufacturer": "Nvidia",
                "cudaCores": 0, "secureCloud": True, "communityCloud": True, "securePrice": price,
                "communityPrice": round(price * 0.8, 2), "oneMonthPrice": None, "threeMonthPrice": None,
                "oneWeekPrice": None, "communitySpotPrice": None, "secureSpotPrice": None,
                "lowestPrice": {"minimumBidPrice": round(price * 0.5, 2), "uninterruptablePrice": price}}

    def _new(self, pod_id: str, name: str, image: str, gpu: str, env: dict[str, str], args: str,
             container: str | None) -> dict[str, Any]:
        return {"id": pod_id, "name": name, "image": image, "gpu_type": gpu, "env": env, "docker_args": args,
                "container": container, "created": time.time(), "terminated": None,
                "cost_per_hr": self.prices.get(gpu, 1.0)}

    def _create(self, query: str) -> dict[str, Any]:
        gpu = _field(query, "gpuTypeId") or ""
        if gpu not in self.prices:
            return {"errors": [{"message": f"stand-in: unknown GPU type {gpu!r}"}]}
        if gpu in self.no_capacity:
            return {"errors": [{"message": CAPACITY_MESSAGE}]}
        name = _field(query, "name") or ""
        image = _field(query, "imageName") or ""
        args = _field(query, "dockerArgs") or ""
        env = dict(re.findall(r'\{ key: "([^"]*)", value: "([^"]*)" \}', query))
        pod_id = secrets.token_hex(7)
        asked = time.time()  # a pod exists (and bills) from the request on, its container start included
        container_id = None if self.never_start or self.docker is None else self._run(pod_id, image, args, env)
        with self.lock:
            self.pods[pod_id] = {**self._new(pod_id, name, image, gpu, env, args, container_id), "created": asked}
        return {"data": {"podFindAndDeployOnDemand": {"id": pod_id, "imageName": image,
                                                      "env": [f"{k}={v}" for k, v in env.items()],
                                                      "machineId": "standin", "machine": {"podHostId": pod_id}}}}

    def _run(self, pod_id: str, image: str, args: str, env: dict[str, str]) -> str:
        from docker.types import Mount  # type: ignore[import-untyped]

        from core.sandbox.bwrap import python_mounts

        mounts = [Mount(target=str(m.inside), source=str(m.source), type="bind", read_only=True)
                  for m in python_mounts()]
        mounts.append(Mount(target=f"{self.code_dir}/core", source=str(REPO / "core"), type="bind", read_only=True))
        mounts.append(Mount(target=f"{self.code_dir}/core/data/demo", source=str(self.empty), type="bind",
                            read_only=True))
        container = self.docker.containers.run(
            self.image_map.get(image, image), shlex.split(args), detach=True, environment=env,
            name=f"runpod-standin-{pod_id}", labels={"w2s.stand-in": self.id, "w2s.stand-in.pod": pod_id},
            user="65534:65534", read_only=True, tmpfs={"/tmp": "rw,nosuid,nodev,mode=1777,size=1g"},
            network_mode="host", working_dir=self.code_dir, mounts=mounts, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], init=True)
        return str(container.id)

    def terminate(self, pod_id: str) -> None:
        with self.lock:
            pod = self.pods.get(pod_id)
            if pod is None:
                raise KeyError(f"pod {pod_id} not found")
            if pod["terminated"] is None:
                pod["terminated"] = time.time()
            container_id = pod["container"]
        if container_id:
            try:
                self.docker.containers.get(container_id).remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass

    def _view(self, pod: dict[str, Any]) -> dict[str, Any]:
        status, runtime, uptime = "RUNNING", None, 0
        if pod["container"]:
            try:
                container = self.docker.containers.get(pod["container"])
                container.reload()
                state = container.status
            except Exception:  # noqa: BLE001
                state = "exited"
            if state in ("running", "created", "restarting"):
                uptime = int(time.time() - pod["created"])
                runtime = {"uptimeInSeconds": uptime, "ports": []}
            else:
                status = "EXITED"
        return {"id": pod["id"], "name": pod["name"], "desiredStatus": status, "costPerHr": pod["cost_per_hr"],
                "imageName": pod["image"], "env": [f"{k}={v}" for k, v in pod["env"].items()], "gpuCount": 1,
                "dockerArgs": pod["docker_args"], "containerDiskInGb": 30, "volumeInGb": 0, "memoryInGb": 32,
                "vcpuCount": 8, "podType": "RESERVED", "port": None, "ports": "", "uptimeSeconds": uptime,
                "lastStatusChange": "", "machineId": "standin", "dockerId": pod["container"], "volumeMountPath": "",
                "runtime": runtime, "machine": {"gpuDisplayName": pod["gpu_type"]}}
