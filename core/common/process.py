"""Is this the very process we started? (pid + start time, so a recycled pid is never mistaken.)"""

from __future__ import annotations

CTIME_TOLERANCE_S = 0.05


def process_alive(pid: int | None, ctime: float | None = None) -> bool:
    """True when ``pid`` runs (not a zombie) and, when ``ctime`` is given, was started at ``ctime``."""
    if not pid:
        return False
    import psutil  # ~35 ms: loaded by the first check, not by every module that might check

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return ctime is None or abs(proc.create_time() - ctime) < CTIME_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
