"""``w2s gpu``: what the GPUs are doing and which job holds each."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    gpu = sub.add_parser("gpu", help="GPU inventory: utilization, memory, temperature, holder job")
    gpu.add_argument("--json", action="store_true", help="print a JSON list (empty: no NVIDIA GPU)")
    gpu.set_defaults(func=_gpu)


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _gpu(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.common.errors import UserError
    from core.control.gpu import no_gpu_reason, probe

    try:
        gpus = probe()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps([g.to_dict() for g in gpus], indent=2))
        return 0
    if not gpus:
        print(f"no NVIDIA GPU ({no_gpu_reason()})")
        return 0
    for g in gpus:
        mem = f"{_fmt(g.mem_used_mb and g.mem_used_mb / 1024, '', 1)}/{_fmt(g.mem_total_mb and g.mem_total_mb / 1024, ' GiB', 1)}"
        print(f"[{g.index}] {g.name}  util {_fmt(g.util_pct, '%')}  mem {mem}  {_fmt(g.temp_c, 'C')}  "
              f"{_fmt(g.power_w, 'W')}  procs {len(g.processes)}  job {g.holder_job or '-'}")
    return 0
