"""A RunPod run's artifacts in S3: the trusted side's uploads, the pod's pre-signed URLs, the pulls back.

Why S3 and pre-signed URLs: a pod is a machine we do not control, so it must never hold the operator's
AWS keys. The trusted side (boto3, the operator's credentials through boto3's normal chain) uploads a
run's label-free inputs under one prefix per run and signs a URL per object: GET for what the pod reads,
PUT for what it writes. The pod holds only those URLs, which reach nothing but those objects, and only
until they expire. A URL carries the access key *id* (SigV4 names the signer), never the secret key.

Every failure is one line naming ``s3://bucket/key`` and what went wrong (a :class:`S3Failure`, which
is a :class:`~core.sandbox.base.SandboxUnavailable`: the job fails with that line, no pod is started).
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.sandbox.base import SandboxUnavailable
from core.sandbox.runpod_settings import RunPodSettings

MAX_INPUT_BYTES = 4 << 30  # one input folder, compressed: beyond this the run is refused


class S3Failure(SandboxUnavailable):
    """An S3 call failed; the message names the object and the cause."""


def _cause(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error") or {}
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        code = err.get("Code") or "error"
        message = err.get("Message") or ""
        return f"{code}{f' (HTTP {status})' if status else ''}{f': {message}' if message and message != code else ''}"
    text = str(exc).strip().replace("\n", " ")
    return text[:200] or type(exc).__name__


class Artifacts:
    """One bucket, through one boto3 client made from the operator's credentials."""

    def __init__(self, settings: RunPodSettings) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.client: Any = self._client(attempts=4, connect_timeout=10, read_timeout=60)

    def _client(self, attempts: int, connect_timeout: float, read_timeout: float) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if self.settings.endpoint_url else "auto"},
            retries={"max_attempts": attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        return boto3.client("s3", region_name=self.settings.region or None,
                            endpoint_url=self.settings.endpoint_url or None, config=config)

    def where(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def check(self) -> str | None:
        """None when the bucket answers with these credentials, else one line saying why not."""
        try:  # one quick try: a doctor or a launch must not hang on an endpoint that does not answer
            self._client(attempts=1, connect_timeout=5, read_timeout=15).head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001 - no credentials, no bucket, no network: all one line
            name = type(exc).__name__
            if name == "NoCredentialsError":
                return (f"no AWS credentials for {self.where()} (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                        "AWS_PROFILE or another source boto3 reads)")
            endpoint = self.settings.endpoint_url or "AWS"
            return f"S3 bucket {self.where()} not usable at {endpoint}: {_cause(exc)}"
        return None

    # -- writing ----------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except Exception as exc:  # noqa: BLE001
            raise S3Failure(f"S3 upload to {self.where(key)} failed: {_cause(exc)}") from None

    def put_file(self, key: str, path: Path) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, key)
        except Exception as exc:  # noqa: BLE001
            inner = exc.__cause__ or exc.__context__ or exc  # boto3 wraps the S3 error it gave up on
            raise S3Failure(f"S3 upload to {self.where(key)} failed: {_cause(inner)}") from None

    # -- the pod's URLs -----------------------------------------------------------------------
    def get_url(self, key: str) -> str:
        return str(self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(self.settings.url_ttl_s)))

    def put_url(self, key: str) -> str:
        return str(self.client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(self.settings.url_ttl_s)))

    # -- reading ------------------------------------------------------------------------------
    def read(self, key: str, offset: int = 0, limit: int | None = None) -> bytes | None:
        """The object's bytes from ``offset`` (at most ``limit``); None when it does not exist (yet);
        b"" when nothing lies beyond ``offset``. S3Failure for anything else."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if offset or limit is not None:
            end = "" if limit is None else str(offset + max(0, limit) - 1)
            args["Range"] = f"bytes={offset}-{end}"
        try:
            response = self.client.get_object(**args)
            return bytes(response["Body"].read())
        except Exception as exc:  # noqa: BLE001
            code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            if code == "InvalidRange":
                return b""
            raise S3Failure(f"S3 read of {self.where(key)} failed: {_cause(exc)}") from None

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as exc:  # noqa: BLE001
            code = ((getattr(exc, "response", None) or {}).get("Error") or {}).get("Code")
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise S3Failure(f"S3 head of {self.where(key)} failed: {_cause(exc)}") from None

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(str(item["Key"]) for item in page.get("Contents", []))
        return out

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; how many. Never raises (a leftover costs cents)."""
        try:
            keys = self.keys(prefix)
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start:start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            return len(keys)
        except Exception:  # noqa: BLE001
            return 0


def tar_folder(source: Path, dest: Path, exclude: Iterable[str] = ()) -> int:
    """``source``'s content as a gzipped tarball at ``dest`` (links kept as links, never followed;
    ``__pycache__`` and the relative paths in ``exclude`` left out); its size in bytes."""
    skip = {str(Path(e)) for e in exclude}

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        rel = str(Path(info.name))
        if rel in skip or "__pycache__" in Path(rel).parts:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        for entry in sorted(os.listdir(source)):
            tar.add(source / entry, arcname=entry, recursive=True, filter=keep)
    size = dest.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise SandboxUnavailable(f"{source}: {size >> 20} MiB compressed, over the {MAX_INPUT_BYTES >> 20} MiB a "
                                 "pod's input may be")
    return size


def temp_tarball(source: Path, exclude: Iterable[str] = ()) -> Path:
    """``tar_folder`` into a fresh temporary file (the caller deletes it)."""
    fd, name = tempfile.mkstemp(prefix="w2s-pod-input-", suffix=".tar.gz")
    os.close(fd)
    tar_folder(source, Path(name), exclude)
    return Path(name)
