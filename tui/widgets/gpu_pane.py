"""The GPU pane: one card per device with utilisation and memory sparklines, temperature, power, holder."""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tui import data
from tui.format import shorten, spark

HISTORY = 30  # samples kept (and characters drawn) per sparkline


def _pick(d: dict[str, Any], *names: str) -> Any:
    for name in names:
        if d.get(name) is not None:
            return d[name]
    return None


def normalize_gpu(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept the probe's field names (and a few spellings) so the card has one shape to draw."""
    mem_used = _pick(raw, "mem_used_mb", "memory_used_mb", "mem_used", "memory_used")
    mem_total = _pick(raw, "mem_total_mb", "memory_total_mb", "mem_total", "memory_total")
    holder = _pick(raw, "holder_job", "holder", "job_id", "job")
    return {
        "index": _pick(raw, "index", "id") or 0,
        "name": _pick(raw, "name") or "GPU",
        "util": _pick(raw, "util_pct", "utilization", "util", "gpu_util"),
        "mem_used": mem_used,
        "mem_total": mem_total,
        "temp": _pick(raw, "temperature_c", "temp_c", "temperature", "temp"),
        "power": _pick(raw, "power_w", "power_draw_w", "power"),
        "power_limit": _pick(raw, "power_limit_w", "power_limit"),
        "holder": holder,
    }


def _mem_text(used: Any, total: Any) -> str:
    if used is None or total in (None, 0):
        return "mem -"
    used_f, total_f = float(used), float(total)
    # values above 1e5 are bytes; otherwise MiB
    scale, unit = (1024**3, "GiB") if total_f > 1e5 else (1024, "GiB")
    return f"mem {used_f / scale:.1f}/{total_f / scale:.1f} {unit}"


class GpuCard(Vertical):
    """Name and holder, the numbers, then utilisation and memory sparklines on a fixed 0-100% scale."""

    def __init__(self, gpu: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(classes="gpu-card", **kwargs)
        self.index = gpu["index"]
        self._first = gpu
        # only real samples: a sparkline never pretends to know the past
        self.util_history: deque[float] = deque(maxlen=HISTORY)
        self.mem_history: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Static("", classes="gpu-head")
        yield Static("", classes="gpu-stats")
        yield Static("", classes="gpu-sparks")

    def on_mount(self) -> None:
        self.update_gpu(self._first)

    def update_gpu(self, gpu: dict[str, Any]) -> None:
        util = float(gpu["util"]) if gpu["util"] is not None else 0.0
        mem_frac = 0.0
        if gpu["mem_used"] is not None and gpu["mem_total"]:
            mem_frac = float(gpu["mem_used"]) / float(gpu["mem_total"]) * 100
        self.util_history.append(util)
        self.mem_history.append(mem_frac)
        self.query_one(".gpu-sparks", Static).update(
            f"util [cyan]{spark(self.util_history, HISTORY)}[/]  mem [magenta]{spark(self.mem_history, HISTORY)}[/]"
        )
        temp = f"{float(gpu['temp']):.0f}°C" if gpu["temp"] is not None else "-°C"
        power = f"{float(gpu['power']):.0f}" if gpu["power"] is not None else "-"
        power += f"/{float(gpu['power_limit']):.0f} W" if gpu["power_limit"] else " W"
        holder = f"[b]job {escape(str(gpu['holder']))}[/]" if gpu["holder"] else "[dim]free[/]"
        name = escape(shorten(str(gpu["name"]).removeprefix("NVIDIA "), 28))
        head = f"[b]GPU {gpu['index']}[/] {name} · {holder}"
        stats = f"util {util:3.0f}% · {_mem_text(gpu['mem_used'], gpu['mem_total'])} · {temp} · {power}"
        self.query_one(".gpu-stats", Static).update(stats)
        self.query_one(".gpu-head", Static).update(head)


class GpuPane(Vertical):
    """Cards keyed by device index; a plain "no NVIDIA GPU" line when the probe finds none."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = "GPU"
        self.cards: dict[str, GpuCard] = {}

    def compose(self) -> ComposeResult:
        yield Static("probing GPUs…", id="gpu-note", classes="pane-note")
        yield VerticalScroll(id="gpu-cards")

    def apply_feed(self, feed: data.Feed) -> None:
        note = self.query_one("#gpu-note", Static)
        if not feed.available:
            note.update(escape(feed.note))
            return
        gpus = [normalize_gpu(g) for g in feed.items]
        if not gpus:
            reason = feed.note if feed.note and feed.note != "no NVIDIA GPU" else "none found"
            note.update(escape(f"no NVIDIA GPU: runs use the CPU ({reason})"))
        else:
            busy = sum(1 for g in gpus if g["holder"])
            note.update(f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''} · {busy} held by jobs")
        box = self.query_one("#gpu-cards", VerticalScroll)
        seen = set()
        for gpu in gpus:
            key = str(gpu["index"])
            seen.add(key)
            card = self.cards.get(key)
            if card is None:
                card = GpuCard(gpu)
                self.cards[key] = card
                box.mount(card)
            else:
                card.update_gpu(gpu)
        for key in [k for k in self.cards if k not in seen]:
            self.cards.pop(key).remove()
