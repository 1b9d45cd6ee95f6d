"""How the agent suite words times, durations and delivery statuses (pure; unit-tested).

Times are shown in the workspace's time zone, computed on the server at render time, so the
first paint needs no script and every agent of a workspace reads the same clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# A message line's delivery status: its tick and what a screen reader says.
TICKS: dict[str, tuple[str, str]] = {
    "queued": ("🕓", "queued"),
    "unknown": ("?", "outcome unknown"),
    "sent": ("✓", "sent"),
    "delivered": ("✓✓", "delivered"),
    "read": ("✓✓", "read"),
    "played": ("✓✓", "played"),
    "refused": ("⊘", "refused"),
    "failed": ("!", "failed"),
    "deleted": ("⌫", "deleted"),
}


def clock(moment: datetime | str | None, zone: ZoneInfo, now: datetime) -> str:
    """``14:03`` today, ``Mon 14:03`` within the week, ``3 Mar 14:03`` before (local time).

    Accepts the ISO text an event's JSON content keeps, too."""
    if isinstance(moment, str):
        text = moment
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    today = now.astimezone(zone).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if abs((today - local.date()).days) < 7:
        return local.strftime("%a %H:%M")
    return f"{local.day} {local.strftime('%b %H:%M')}"


def span(seconds: float) -> str:
    """A duration in words an agent reads at a glance: ``45 s``, ``12 min``, ``3 h 05 min``,
    ``2 d 4 h``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def since(moment: datetime | None, now: datetime) -> str:
    """How long ago, in words (``12 min``); empty when unknown."""
    if moment is None:
        return ""
    return span((now - moment) / timedelta(seconds=1))


def until(moment: datetime | None, now: datetime) -> str:
    """How long until ``moment`` (``3 h 05 min``); ``now`` once it has passed."""
    if moment is None:
        return ""
    left = (moment - now) / timedelta(seconds=1)
    return span(left) if left > 0 else "now"


def preview(text: str | None, kind: str | None, limit: int = 90) -> str:
    """A message's one-line preview: its text, or its type when it has none."""
    if text:
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"
    if kind in (None, "text"):
        return ""
    return f"[{kind}]"
