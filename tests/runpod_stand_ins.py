"""The RunPod tests' world: moto (a real S3 API, in server mode) behind a fault-injecting proxy, the
RunPod API stand-in (``tests.fakes.runpod_api``) whose pods are containers on the local Docker engine,
and the checks every test ends with (no pod left, no secret in any request, no label in the bucket).

Needs the Docker engine and the offline image (``tests.docker_engine``: skipped on a developer's
machine without them, FAILED under CI).
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.runpod_api import FakeRunPod
from tests.fakes.s3_faults import FaultyS3Proxy

pytest_plugins = ["tests.docker_engine"]

RUN_KEY = "rpa_" + secrets.token_hex(16)
AWS_KEY_ID = "AKIA" + secrets.token_hex(8).upper()
AWS_SECRET = secrets.token_urlsafe(30)
ANTHROPIC_KEY = "sk-ant-api03-" + secrets.token_hex(20)
IMAGE = "registry.example.com/w2s:test"  # what the settings name; the stand-in runs the offline image
GPU_TYPES = ("NVIDIA GeForce RTX 4090", "NVIDIA A40")


@dataclass
class World:
    ws: Path
    fake: FakeRunPod
    proxy: FaultyS3Proxy
    bucket: str
    s3: Any  # a boto3 client straight to moto (not through the proxy)

    def objects(self) -> dict[str, bytes]:
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
        return out

    def assert_clean(self) -> None:
        """No pod billing or container left; no secret in any request or pod; no label in the bucket."""
        assert self.fake.billing() == [], [p["name"] for p in self.fake.billing()]
        assert [c.name for c in self.fake.containers()] == []
        requests = self.fake.log_path.read_text(encoding="utf-8") if self.fake.log_path.exists() else ""
        assert requests, "the stand-in recorded no request"
        pods = json.dumps([{k: p[k] for k in ("name", "env", "docker_args", "image")} for p in self.fake.created()])
        objects = self.objects()
        for secret in (RUN_KEY, AWS_SECRET, ANTHROPIC_KEY):
            assert secret not in requests, "a secret reached the RunPod API"
            assert secret not in pods, "a secret reached a pod"
            for key, data in objects.items():
                assert secret.encode() not in data, f"a secret is in s3://{self.bucket}/{key}"
        assert AWS_KEY_ID not in pods.replace(f"Credential={AWS_KEY_ID}", ""), "the key id outside a signed URL"
        assert all(json.loads(line)["auth_ok"] for line in requests.splitlines()), "a request without the key"
        scan_for_labels(self.ws, objects)


def _rows(data: bytes) -> list[Any]:
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def scan_for_labels(ws: Path, objects: dict[str, bytes]) -> None:
    """No object (nor any file inside an uploaded tarball) is a labelled file or holds a label field."""
    from core.data.datasets import LABEL_REVEALING

    labelled = {p.read_bytes() for p in (ws / "labeled_data").rglob("*") if p.is_file()}
    files: dict[str, bytes] = {}
    for key, data in objects.items():
        if key.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar.getmembers():
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        files[f"{key}:{member.name}"] = handle.read()
        else:
            files[key] = gzip.decompress(data) if key.endswith(".gz") else data
    for name, data in files.items():
        assert data not in labelled or not data, f"{name} is a labelled file"
        for row in _rows(data):
            if isinstance(row, dict):
                leaked = set(row) & set(LABEL_REVEALING)
                assert not leaked, f"{name}: a row with {sorted(leaked)}"


@pytest.fixture
def world(docker_ws: Path, docker_client: Any, offline_image: str, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request otherwise

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    proxy = FaultyS3Proxy(f"http://{host}:{port}").start()
    bucket = f"w2s-test-{secrets.token_hex(4)}"
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{host}:{port}")
    s3.create_bucket(Bucket=bucket)
    fake = FakeRunPod(docker_client, RUN_KEY, tmp_path / "runpod_requests.jsonl",
                      image_map={IMAGE: offline_image}).start()
    settings = {
        "RUNPOD_API_KEY": RUN_KEY, "RUNPOD_API_BASE_URL": fake.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "W2S_S3_BUCKET": bucket, "W2S_S3_REGION": "us-east-1", "W2S_S3_ENDPOINT_URL": proxy.url,
        "W2S_RUNPOD_IMAGE": IMAGE, "W2S_RUNPOD_PYTHON": sys.executable, "W2S_RUNPOD_GPU_TYPES": ",".join(GPU_TYPES),
        "W2S_RUNPOD_POLL": "0.3", "W2S_RUNPOD_POD_POLL": "1", "W2S_RUNPOD_UPLOAD_EVERY": "0.5",
        "W2S_RUNPOD_START_TIMEOUT": "90", "W2S_RUNPOD_HEARTBEAT_TIMEOUT": "60", "W2S_RUNPOD_CAPACITY_WAIT": "0",
        "W2S_RUNPOD_LINGER": "30", "W2S_RUNPOD_KEEP_S3": "1", "W2S_RUNPOD_MAX_PODS": "4",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    try:
        yield World(docker_ws, fake, proxy, bucket, s3)
    finally:
        fake.stop()
        proxy.stop()
        moto.stop()
