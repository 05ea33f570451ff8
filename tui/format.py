"""Pure text formatting for the panes: times, bars, PGR cells. No Textual, no I/O, so it is cheap to test."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

BAR_FULL = "█"
BAR_EMPTY = "░"


def to_epoch(value: Any) -> float | None:
    """Times in job/agent docs may be epoch seconds or ISO strings; the panes only need epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        text = str(value).replace("Z", "+00:00")
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def duration(seconds: float | None) -> str:
    """Compact duration: 42s, 3m05s, 2h07m, 3d04h."""
    if seconds is None or seconds < 0 or math.isnan(seconds):
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def elapsed(started: Any, finished: Any, now: float) -> str:
    """Wall time of a job: until it finished, or until now while it runs."""
    start = to_epoch(started)
    if start is None:
        return "-"
    end = to_epoch(finished)
    return duration((end if end is not None else now) - start)


def attempt_start(job: dict[str, Any]) -> float | None:
    """When the job's current attempt started running: a retried job's clock restarts, without the
    gap it spent failed or queued (the last ``running`` entry of its history; else ``started``)."""
    for entry in reversed(job.get("history") or []):
        if isinstance(entry, dict) and entry.get("state") == "running":
            return to_epoch(entry.get("time"))
    return to_epoch(job.get("started"))


def attempt_elapsed(job: dict[str, Any], now: float) -> str:
    """Wall time of the current attempt: until it finished, or until now while it runs."""
    start = attempt_start(job)
    if start is None:
        return "-"
    end = to_epoch(job.get("finished")) if str(job.get("state")) not in ("running", "starting") else None
    return duration((end if end is not None else now) - start)


def eta(job: dict[str, Any], now: float) -> float | None:
    """Seconds left for a running job at its average pace so far (None before 2% or when not running)."""
    try:
        fraction = float(job.get("progress"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    start = attempt_start(job)
    if str(job.get("state")) != "running" or start is None or not 0.02 <= fraction < 1.0:
        return None
    spent = max(now - start, 0.0)
    return spent * (1.0 - fraction) / fraction


def bar(fraction: float | None, width: int = 10) -> str:
    """A text progress bar that reads fine without colour (over SSH, TERM=xterm-256color)."""
    if fraction is None:
        return BAR_EMPTY * width
    f = min(max(float(fraction), 0.0), 1.0)
    full = int(round(f * width))
    return BAR_FULL * full + BAR_EMPTY * (width - full)


def progress_cell(progress: Any) -> str:
    if progress is None:
        return ""
    try:
        f = float(progress)
    except (TypeError, ValueError):
        return ""
    return f"{bar(f, 6)} {int(round(min(max(f, 0.0), 1.0) * 100)):3d}%"


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return "-"
    return f"{f:.{digits}f}"


def pgr_cell(mean: Any, ci95: Any) -> str:
    """``0.338 ± 0.041`` (half-width of the 95% CI), or ``n/a``."""
    if mean is None:
        return "n/a"
    half = None
    if isinstance(ci95, (list, tuple)) and len(ci95) == 2 and None not in ci95:
        half = (float(ci95[1]) - float(ci95[0])) / 2
    if half is None or math.isnan(half):
        return num(mean)
    return f"{num(mean)} ± {half:.3f}"


def money(value: Any) -> str:
    """``$0.61``, ``$123.40``, ``$9,000``: cents while they matter, never cut by a narrow column."""
    if value is None:
        return "-"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"${f:,.0f}" if abs(f) >= 1000 else f"${f:.2f}"


def gpus_cell(gpus: Any) -> str:
    if not gpus:
        return "-"
    if isinstance(gpus, (list, tuple)):
        return ",".join(str(g) for g in gpus)
    return str(gpus)


def shorten(text: Any, width: int) -> str:
    """One line, at most ``width`` cells (ellipsis when cut)."""
    s = " ".join(str(text or "").split())
    return s if len(s) <= width else s[: max(width - 1, 0)] + "…"


def shorten_middle(text: Any, width: int, head: float = 0.4) -> str:
    """One line, at most ``width`` cells, cut in the middle: the end (a seed, a setting) stays."""
    s = " ".join(str(text or "").split())
    if len(s) <= width:
        return s
    if width <= 1:
        return "…"[:width]
    front = int((width - 1) * head)
    back = width - 1 - front
    return s[:front] + "…" + (s[-back:] if back else "")


def tail(text: str, width: int) -> str:
    """The end of ``text`` in ``width`` cells: keys share long model prefixes, their ends tell them apart."""
    if len(text) <= width:
        return text
    return "…" + text[-(width - 1):] if width > 1 else "…"[:width]


SPARK_CHARS = "▁▂▃▄▅▆▇█"


def spark(values: list[float] | tuple[float, ...], width: int, top: float = 100.0) -> str:
    """A one-line sparkline on a fixed 0..``top`` scale (so 3% never looks like 87%), newest on the
    right, left-padded with spaces while there are fewer samples than ``width``."""
    recent = list(values)[-width:]
    chars = []
    for v in recent:
        f = min(max(float(v) / top, 0.0), 1.0) if top else 0.0
        chars.append(SPARK_CHARS[min(int(f * len(SPARK_CHARS)), len(SPARK_CHARS) - 1)])
    return " " * (width - len(chars)) + "".join(chars)
