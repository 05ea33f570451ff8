"""``w2s jobs``: list, show, cancel, retry and follow the logs of queued and running jobs."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from core.app import jobs as app
from core.common.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    jobs = sub.add_parser("jobs", help="list, show, cancel, retry jobs; read their logs")
    verbs = jobs.add_subparsers(dest="jobs_verb", metavar="ACTION")
    jobs.set_defaults(func=_list, json=False, all=False, active=False, limit=50)

    lst = verbs.add_parser("list", help="jobs, newest first")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--active", action="store_true", help="only unfinished jobs")
    lst.add_argument("--limit", type=int, default=50, help="unfinished + newest finished, N in all (50)")
    lst.add_argument("--all", action="store_true", help="every job ever (slower with a long history)")
    lst.set_defaults(func=_list)

    submit = verbs.add_parser("submit", help="queue any command as a job: w2s jobs submit [opts] -- CMD ...")
    submit.add_argument("--name", default="")
    submit.add_argument("--kind", default="command")
    submit.add_argument("--gpus", type=int, default=0, help="whole GPUs to assign (CUDA_VISIBLE_DEVICES)")
    submit.add_argument("--retries", type=int, default=0, help="retries for transient failures (exit 75)")
    submit.add_argument("--executor", default=None, help="default: the service's --executor, else local")
    submit.add_argument("command", nargs=argparse.REMAINDER)
    submit.set_defaults(func=_submit)

    show = verbs.add_parser("show", help="one job in full (JSON)")
    show.add_argument("id")
    show.set_defaults(func=_show)

    cancel = verbs.add_parser("cancel", help="cancel a job (its whole process tree)")
    cancel.add_argument("id")
    cancel.set_defaults(func=_cancel)

    retry = verbs.add_parser("retry", help="queue a failed or cancelled job again")
    retry.add_argument("id")
    retry.set_defaults(func=_retry)

    logs = verbs.add_parser("logs", help="print a job's stdout.log")
    logs.add_argument("id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(func=_logs)


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    secs = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{int(secs // size)}{unit} ago"
    return f"{int(secs)}s ago"


def _row(job: dict[str, Any]) -> str:
    progress = "" if job.get("progress") is None else f" {job['progress'] * 100:.0f}%"
    gpus = ",".join(str(g) for g in job.get("gpus") or []) or "-"
    exit_code = "" if job.get("exit_code") is None else f" exit {job['exit_code']}"
    return (f"{job['id']}  {job['state']:<9}{progress:<5} {job.get('kind', ''):<10} {job.get('executor', ''):<6} "
            f"gpu {gpus:<4} {_ago(job.get('created')):<8}  {job.get('name', '')}{exit_code}")


def _list(args: argparse.Namespace, unknown: list[str]) -> int:
    if args.limit < 1:
        raise UserError(f"--limit: must be at least 1, got {args.limit}")
    jobs = app.list_jobs(active_only=args.active, limit=None if args.all else args.limit)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    for job in jobs:
        print(_row(job))
    return 0


def _submit(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.app.views import service_status

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UserError("jobs submit: give the command after --, e.g. w2s jobs submit -- python train.py")
    try:
        job = app.submit_command(command, kind=args.kind, name=args.name, executor=args.executor, gpus=args.gpus,
                                 max_retries=args.retries)
    except UserError as exc:
        raise UserError(f"jobs submit: {exc}") from None
    print(f"{job['id']}: queued" + ("" if service_status()["running"] else " (no service running: start one with "
                                    "`w2s serve --detach`)"))
    return 0


def _show(args: argparse.Namespace, unknown: list[str]) -> int:
    print(json.dumps(app.show_job(args.id), indent=2))
    return 0


def _cancel(args: argparse.Namespace, unknown: list[str]) -> int:
    job_id = app.resolve_job_id(args.id)
    job = app.cancel_job(job_id)
    print(f"{job_id}: {job['state']}" + (" (cancel requested)" if job["state"] not in ("cancelled",) else ""))
    return 0


def _retry(args: argparse.Namespace, unknown: list[str]) -> int:
    job_id = app.resolve_job_id(args.id)
    job = app.retry_job(job_id)
    print(f"{job_id}: {job['state']}")
    return 0


def _logs(args: argparse.Namespace, unknown: list[str]) -> int:
    job_id = app.resolve_job_id(args.id)
    offset = 0
    while True:
        text, offset = app.read_log(job_id, offset)
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            continue
        if not args.follow:
            return 0
        if app.is_finished(job_id):
            text, offset = app.read_log(job_id, offset)
            sys.stdout.write(text)
            sys.stdout.flush()
            return 0
        time.sleep(0.5)
