"""``w2s doctor``: can untrusted code be isolated on this machine, and how to get there if not."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="say which sandboxes work here (untrusted code runs only in one)")
    doctor.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.sandbox.select import doctor

    reports = doctor()
    for report in reports:
        mark = "ok " if report.works else "-- "
        print(f"{mark} sandbox {report.name}: {report.detail}")
    isolated = any(r.works for r in reports if r.name != "none")
    from core.sandbox.select import docker_report

    docker = docker_report()  # the docker executor's sandbox: optional, so it never fails the doctor
    print(f"{'ok ' if docker.works else '-- '} sandbox docker: {docker.detail}")
    if not isolated:
        print("no isolating sandbox works here: idea runs and agent tools will refuse to start")
    from core.sandbox.runpod import runpod_report

    pods_work, pods = runpod_report()  # optional: only jobs submitted with executor "runpod" need it
    print(f"{'ok ' if pods_work else '-- '} executor runpod: {pods}"
          + ("" if pods_work else " (needed only for executor 'runpod')"))
    from executors.slurm import check_cluster

    slurm = check_cluster()  # optional: only jobs submitted with executor "slurm" need it
    print(f"{'ok ' if slurm.ok else '-- '} executor slurm: {slurm.detail}"
          + ("" if slurm.ok else " (needed only for executor 'slurm')"))
    return 0 if isolated else 1
