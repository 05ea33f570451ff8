"""What the RunPod executor adds to a job, against the local stand-ins (moto for S3, the RunPod API
stand-in whose pods are containers on the local Docker engine), measured with a trivial idea so the
overhead is all there is:

    DOCKER_HOST=unix:///... uv run python bench/runpod_overhead.py [--jobs 3] [--fast]

For each of ``--jobs`` jobs (one at a time, through a real in-process scheduler ticking every 0.05 s),
from the job's history, the stand-in's pod and the S3 requests the pod made:

- submit -> running: the scheduler started the job's trusted process;
- running -> pod created: the trusted process staged and uploaded the inputs and created the pod;
- pod created -> first report: the pod started, fetched its plan and reported (``status.json``);
- first report -> pod finished: the idea's own time on the pod (including the inputs' download and
  the Python start-up; the instant idea does no work);
- pod finished -> terminated: the attach noticed, copied the predictions back and terminated the pod;
- terminated -> scored: the runner validated the predictions, the referee scored them, the job ended;

with the same jobs on the local executor (bwrap) alongside, for scale. Without ``--fast`` the shipped
cadences are used (the attach reads S3 every 2 s, asks RunPod every 10 s, the pod uploads every 5 s);
``--fast`` uses the tests' (0.3 s, 1 s, 0.5 s). Nothing is asserted; the figures are printed.
UNVERIFIED against real RunPod: image pulls and machine start there take minutes, not seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

INSTANT = '''
from core.run import experiment

def run_experiment(cfg):
    data = experiment.load_label_free(cfg)
    return {"test_predictions": {r["id"]: 0.5 for r in data.test}}
'''


def _when(job: dict[str, Any], state: str) -> float:
    return next(float(h["time"]) for h in job["history"] if h["state"] == state)


def _drive(job_id: str, timeout: float = 300) -> dict[str, Any]:
    from core.control.jobs import get_job
    from core.control.scheduler import Scheduler

    sched = Scheduler(gpus=[], poll_interval=0.05)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sched.tick()
        job = get_job(job_id) or {}
        if job.get("state") in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish in {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="the tests' cadences instead of the shipped ones")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from core.sandbox.docker import connect
    from core.sandbox.docker_image import offline_tag
    from tests.fakes.runpod_api import FakeRunPod
    from tests.fakes.s3_faults import FaultyS3Proxy

    client = connect()
    client.images.get(offline_tag())  # `w2s image build --offline` first
    ws = Path(tempfile.mkdtemp(prefix="w2s-runpod-bench-"))
    os.environ.update({
        "W2S_WORKSPACE": str(ws), "AWS_ACCESS_KEY_ID": "AKIABENCH0000000", "AWS_SECRET_ACCESS_KEY": "bench",
        "HF_HUB_OFFLINE": "1", "W2S_LOCAL_CONCURRENCY": "1",
    })
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    proxy = FaultyS3Proxy(f"http://{host}:{port}").start()
    boto3.client("s3", region_name="us-east-1", endpoint_url=f"http://{host}:{port}").create_bucket(Bucket="w2s-bench")
    fake = FakeRunPod(client, "rpa_bench", ws / "runpod_requests.jsonl", image_map={"w2s:bench": offline_tag()}).start()
    os.environ.update({
        "RUNPOD_API_KEY": "rpa_bench", "RUNPOD_API_BASE_URL": fake.url, "W2S_S3_BUCKET": "w2s-bench",
        "W2S_S3_ENDPOINT_URL": proxy.url, "W2S_RUNPOD_IMAGE": "w2s:bench", "W2S_RUNPOD_PYTHON": sys.executable,
        "W2S_RUNPOD_GPU_TYPES": "NVIDIA A40", "W2S_RUNPOD_LINGER": "30",
    })
    if args.fast:
        os.environ.update({"W2S_RUNPOD_POLL": "0.3", "W2S_RUNPOD_POD_POLL": "1", "W2S_RUNPOD_UPLOAD_EVERY": "0.5"})
    try:
        from core.control.submit import submit_idea_runs
        from core.run.resolve import prepare_config
        from tests.conftest import make_dataset
        from tests.tiny_w2s import fake_baselines, tiny_config

        make_dataset(ws)
        cfg = prepare_config(tiny_config())
        fake_baselines(ws, cfg, list(range(100, 100 + 2 * args.jobs)))
        (ws / "ideas" / "instant").mkdir(parents=True)
        (ws / "ideas" / "instant" / "run.py").write_text(INSTANT)
        rows: dict[str, list[list[float]]] = {"runpod": [], "local": []}
        for n in range(args.jobs):
            for k, executor in enumerate(("runpod", "local")):
                submitted = time.time()
                (job,) = submit_idea_runs("instant", cfg, [100 + 2 * n + k], source="cli", executor=executor)
                done = _drive(job["id"])
                if done["state"] != "succeeded":
                    raise SystemExit(f"{executor} job {job['id']} {done['state']}: see {done['run_dir']}/stdout.log")
                running, ended = _when(done, "running"), _when(done, "succeeded")
                if executor == "local":
                    rows["local"].append([running - submitted, ended - running, ended - submitted])
                    continue
                pod = next(p for p in fake.created() if p["name"].endswith(f"{job['id']}-a1"))
                beats = [r["time"] for r in proxy.requests
                         if r["method"] == "PUT" and r["path"].endswith("/out/status.json") and job["id"] in r["path"]]
                gone = float(fake.pods[pod["id"]]["terminated"])
                rows["runpod"].append([running - submitted, pod["created"] - running, beats[0] - pod["created"],
                                       beats[-1] - beats[0], gone - beats[-1], ended - gone, ended - submitted])
        heads = {"runpod": ["submit->running", "running->pod created", "pod created->first report",
                            "first report->pod finished", "pod finished->terminated", "terminated->scored",
                            "total"],
                 "local": ["submit->running", "running->scored", "total"]}
        cadence = "tests' cadences (--fast)" if args.fast else "shipped cadences"
        print(f"{args.jobs} jobs each, instant idea on the tiny dataset, {cadence}; seconds, median [min-max]")
        for executor, table in rows.items():
            print(f"{executor}:")
            for i, head in enumerate(heads[executor]):
                values = [r[i] for r in table]
                print(f"  {head:28s} {statistics.median(values):6.2f}  [{min(values):.2f}-{max(values):.2f}]")
        assert fake.billing() == [], "a pod was left billing"
    finally:
        fake.stop()
        proxy.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
