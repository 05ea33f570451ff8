"""The RunPod sandbox's settings: ``[runpod]`` in ``<workspace>/.w2s/settings.toml``, overridden by env.

Why one place: the trusted job process (which creates the pod), the attach process (which watches it),
the executor (which cancels and reconciles) and ``w2s doctor`` must agree on the bucket, the caps and
the timeouts. Secrets are never read from the file: ``RUNPOD_API_KEY`` comes from the environment only,
AWS credentials through boto3's own chain (environment, shared files, instance roles).

=========================  ==================================  ===========================================
setting (file key)         environment                         default
=========================  ==================================  ===========================================
bucket                     ``W2S_S3_BUCKET``                   required
region                     ``W2S_S3_REGION``                   ``us-east-1``
endpoint_url               ``W2S_S3_ENDPOINT_URL``             AWS (set it for MinIO, R2, a test server)
image                      ``W2S_RUNPOD_IMAGE``                required (``w2s image build`` + push)
python                     ``W2S_RUNPOD_PYTHON``               ``/opt/w2s/.venv/bin/python`` (the image's)
code_dir                   ``W2S_RUNPOD_CODE_DIR``             ``/opt/w2s`` (the image's ``core/`` lives here)
gpu_types                  ``W2S_RUNPOD_GPU_TYPES`` (a,b,c)    RTX 4090, RTX A6000, A40, tried in order
cloud_type                 ``W2S_RUNPOD_CLOUD_TYPE``           ``SECURE`` (or ``COMMUNITY``, ``ALL``)
max_price                  ``W2S_RUNPOD_MAX_PRICE``            1.0 $/hour per pod (dearer types skipped)
volume_gb / disk_gb        ``W2S_RUNPOD_VOLUME_GB`` / ``_DISK_GB``   0 / 30
max_pods                   ``W2S_RUNPOD_MAX_PODS``             4 pods of this workspace at once
max_usd_per_hour           ``W2S_RUNPOD_MAX_USD_PER_HOUR``     4.0 for all of them together
job_max_pods               ``W2S_RUNPOD_JOB_MAX_PODS``         1 pod per job at once
job_max_usd_per_hour       ``W2S_RUNPOD_JOB_MAX_USD_PER_HOUR`` 1.0 per job
start_timeout_s            ``W2S_RUNPOD_START_TIMEOUT``        900: no report from the pod by then: terminated
heartbeat_timeout_s        ``W2S_RUNPOD_HEARTBEAT_TIMEOUT``    300: silent that long while running: terminated
capacity_wait_s            ``W2S_RUNPOD_CAPACITY_WAIT``        900: backing off on no capacity, then a
                                                               transient failure (the scheduler retries)
poll_s                     ``W2S_RUNPOD_POLL``                 2: how often the attach reads S3
pod_poll_s                 ``W2S_RUNPOD_POD_POLL``             10: how often it asks RunPod about the pod
upload_every_s             ``W2S_RUNPOD_UPLOAD_EVERY``         5: how often the pod uploads progress and log
url_ttl_s                  ``W2S_RUNPOD_URL_TTL``              86400: life of the pod's pre-signed URLs (a
                                                               run longer than this stops reporting and
                                                               is terminated: raise it, a week at most)
linger_s                   ``W2S_RUNPOD_LINGER``               60: the pod waits this long to be terminated
keep_s3                    ``W2S_RUNPOD_KEEP_S3``              false: a finished run's S3 prefix is deleted
=========================  ==================================  ===========================================
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.common.settings_file import read_section
from core.common.workspace import paths

API_KEY_ENV = "RUNPOD_API_KEY"
SETTINGS_FILE = "settings.toml"
DEFAULT_GPU_TYPES = ("NVIDIA GeForce RTX 4090", "NVIDIA RTX A6000", "NVIDIA A40")
CLOUD_TYPES = ("SECURE", "COMMUNITY", "ALL")
MAX_URL_TTL_S = 7 * 24 * 3600  # SigV4 pre-signed URLs live at most a week

# file key -> (environment variable, kind, default); kind: text, list, int, float, bool
_FIELDS: dict[str, tuple[str, str, Any]] = {
    "bucket": ("W2S_S3_BUCKET", "text", ""),
    "region": ("W2S_S3_REGION", "text", "us-east-1"),
    "endpoint_url": ("W2S_S3_ENDPOINT_URL", "text", ""),
    "image": ("W2S_RUNPOD_IMAGE", "text", ""),
    "python": ("W2S_RUNPOD_PYTHON", "text", "/opt/w2s/.venv/bin/python"),
    "code_dir": ("W2S_RUNPOD_CODE_DIR", "text", "/opt/w2s"),
    "gpu_types": ("W2S_RUNPOD_GPU_TYPES", "list", DEFAULT_GPU_TYPES),
    "cloud_type": ("W2S_RUNPOD_CLOUD_TYPE", "text", "SECURE"),
    "max_price": ("W2S_RUNPOD_MAX_PRICE", "float", 1.0),
    "volume_gb": ("W2S_RUNPOD_VOLUME_GB", "int", 0),
    "disk_gb": ("W2S_RUNPOD_DISK_GB", "int", 30),
    "max_pods": ("W2S_RUNPOD_MAX_PODS", "int", 4),
    "max_usd_per_hour": ("W2S_RUNPOD_MAX_USD_PER_HOUR", "float", 4.0),
    "job_max_pods": ("W2S_RUNPOD_JOB_MAX_PODS", "int", 1),
    "job_max_usd_per_hour": ("W2S_RUNPOD_JOB_MAX_USD_PER_HOUR", "float", 1.0),
    "start_timeout_s": ("W2S_RUNPOD_START_TIMEOUT", "float", 900.0),
    "heartbeat_timeout_s": ("W2S_RUNPOD_HEARTBEAT_TIMEOUT", "float", 300.0),
    "capacity_wait_s": ("W2S_RUNPOD_CAPACITY_WAIT", "float", 900.0),
    "poll_s": ("W2S_RUNPOD_POLL", "float", 2.0),
    "pod_poll_s": ("W2S_RUNPOD_POD_POLL", "float", 10.0),
    "upload_every_s": ("W2S_RUNPOD_UPLOAD_EVERY", "float", 5.0),
    "url_ttl_s": ("W2S_RUNPOD_URL_TTL", "int", 86400),
    "linger_s": ("W2S_RUNPOD_LINGER", "float", 60.0),
    "keep_s3": ("W2S_RUNPOD_KEEP_S3", "bool", False),
}
# the environment variables of the settings: the trusted job process and its attach process need them
SETTINGS_ENV = tuple(env for env, _, _ in _FIELDS.values())


@dataclass(frozen=True)
class RunPodSettings:
    """Everything a pod is created, watched and capped with (see the module docstring for defaults)."""

    api_key: str = field(repr=False, default="")
    bucket: str = ""
    region: str = "us-east-1"
    endpoint_url: str = ""
    image: str = ""
    python: str = "/opt/w2s/.venv/bin/python"
    code_dir: str = "/opt/w2s"
    gpu_types: tuple[str, ...] = DEFAULT_GPU_TYPES
    cloud_type: str = "SECURE"
    max_price: float = 1.0
    volume_gb: int = 0
    disk_gb: int = 30
    max_pods: int = 4
    max_usd_per_hour: float = 4.0
    job_max_pods: int = 1
    job_max_usd_per_hour: float = 1.0
    start_timeout_s: float = 900.0
    heartbeat_timeout_s: float = 300.0
    capacity_wait_s: float = 900.0
    poll_s: float = 2.0
    pod_poll_s: float = 10.0
    upload_every_s: float = 5.0
    url_ttl_s: int = 86400
    linger_s: float = 60.0
    keep_s3: bool = False

    def missing(self) -> list[str]:
        """What must still be set before a pod can run, each as the variable to set."""
        out = []
        if not self.api_key:
            out.append(f"{API_KEY_ENV} (environment only)")
        if not self.bucket:
            out.append("W2S_S3_BUCKET (or [runpod] bucket)")
        if not self.image:
            out.append("W2S_RUNPOD_IMAGE (or [runpod] image: the pushed `w2s image build` image)")
        return out


def settings_path(root: Path | None = None) -> Path:
    return (root or paths().root) / ".w2s" / SETTINGS_FILE


def _convert(where: str, kind: str, value: Any) -> Any:
    if kind == "text":
        if not isinstance(value, str):
            raise UserError(f"{where}: expected text, got {type(value).__name__}")
        return value.strip()
    if kind == "list":
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: expected a list of GPU type ids, e.g. [\"NVIDIA GeForce RTX 4090\"]")
        items = tuple(v.strip() for v in value if v.strip())
        if not items:
            raise UserError(f"{where}: needs at least one GPU type id")
        return items
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("", "0", "false", "no", "off"):
            return False
        raise UserError(f"{where}: expected true or false, got {value!r}")
    try:
        number = (int if kind == "int" else float)(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < 0 or number != number:
        raise UserError(f"{where}: expected a number >= 0, got {value!r}")
    return number


def load_settings(root: Path | None = None, environ: Mapping[str, str] | None = None) -> RunPodSettings:
    """The workspace's RunPod settings (file, then environment); UserError naming the bad field."""
    env = os.environ if environ is None else environ
    path = settings_path(root)
    values: dict[str, Any] = {}
    for key, value in read_section(path, "runpod").items():
        if key not in _FIELDS:
            raise UserError(f"{path}: runpod.{key}: unknown setting (known: {', '.join(sorted(_FIELDS))})")
        values[key] = _convert(f"{path}: runpod.{key}", _FIELDS[key][1], value)
    for key, (name, kind, _default) in _FIELDS.items():
        if env.get(name, "").strip():
            values[key] = _convert(name, kind, env[name])
    cloud = str(values.get("cloud_type", "SECURE")).upper()
    if cloud not in CLOUD_TYPES:
        raise UserError(f"runpod cloud_type {cloud!r}: expected one of {', '.join(CLOUD_TYPES)}")
    values["cloud_type"] = cloud
    if int(values.get("url_ttl_s", 86400)) > MAX_URL_TTL_S:
        raise UserError(f"W2S_RUNPOD_URL_TTL: at most {MAX_URL_TTL_S} s (a week: the longest a pre-signed URL lives)")
    for key in ("max_pods", "job_max_pods"):
        if key in values and values[key] < 1:
            raise UserError(f"runpod {key}: must be at least 1")
    return RunPodSettings(api_key=env.get(API_KEY_ENV, "").strip(), **values)


def workspace_tag(root: Path | None = None) -> str:
    """Eight hex digits naming this workspace in pod names and S3 keys (its path, hashed: no user
    name or folder reaches RunPod)."""
    where = str((root or paths().root).resolve())
    return hashlib.sha256(where.encode()).hexdigest()[:8]
