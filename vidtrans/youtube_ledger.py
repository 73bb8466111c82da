"""The upload ledger: what was published to YouTube and the quota units spent per Pacific day.

A JSON file beside the YouTube token (``$VIDTRANS_YOUTUBE_LEDGER``, default
``youtube_ledger.json``), rewritten atomically after every change, so a crash
never loses more than the call in flight and never leaves a half-written file.
Used by :mod:`vidtrans.upload`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._io import atomic_path
from .errors import ConfigurationError, QuotaExceededError
from .youtube_auth import token_path

PACIFIC = "America/Los_Angeles"


class QuotaBudgetError(QuotaExceededError):
    """The next call would spend more than ``quota_budget`` units today (checked before calling)."""

    def __init__(self, message: str):
        super().__init__(message, engine="youtube")


def pacific_day(now: datetime | None = None) -> str:
    """YouTube's quota day (it resets at midnight Pacific time) as YYYY-MM-DD."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    now = now or datetime.now(timezone.utc)
    try:
        tz = ZoneInfo(PACIFIC)
    except ZoneInfoNotFoundError:  # no tz database: Pacific standard time is close enough
        from datetime import timedelta

        return (now.astimezone(timezone.utc) - timedelta(hours=8)).date().isoformat()
    return now.astimezone(tz).date().isoformat()


def ledger_path() -> Path:
    env = os.environ.get("VIDTRANS_YOUTUBE_LEDGER")
    return Path(env).expanduser() if env else token_path().with_name("youtube_ledger.json")


class Ledger:
    """What was published and the units spent per Pacific day; a JSON file rewritten atomically.

    ``tracks`` maps ``video|language|name`` to the last published state
    (track id, sha256, draft, units, time); ``quota`` maps a Pacific day to
    the units spent; ``log`` lists every call's outcome.  Every change is
    written at once (temporary file + rename), so a crash never loses more
    than the call in flight and never leaves a half-written ledger.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, clock: Callable[[], datetime] | None = None):
        self.path = Path(path) if path is not None else ledger_path()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.data: dict[str, Any] = {"version": 1, "tracks": {}, "quota": {}, "log": []}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ConfigurationError(f"the upload ledger {self.path} is unreadable ({exc}); move it away to "
                                         "start a new one") from exc
            if not isinstance(loaded, dict) or not isinstance(loaded.get("tracks"), dict):
                raise ConfigurationError(f"the upload ledger {self.path} is not a vidtrans ledger")
            self.data.update(loaded)

    @staticmethod
    def key(video: str, language: str, name: str) -> str:
        return f"{video}|{language.lower()}|{name}"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True), encoding="utf-8")

    def day(self) -> str:
        return pacific_day(self.clock())

    def spent(self, day: str | None = None) -> int:
        """Units spent on *day* (default today, Pacific)."""
        return int(self.data["quota"].get(day or self.day(), 0))

    def charge(self, units: int, budget: int, what: str) -> None:
        """Count *units* for today, or raise QuotaBudgetError (before any call) when over *budget*."""
        day = self.day()
        spent = self.spent(day)
        if spent + units > budget:
            raise QuotaBudgetError(
                f"{what} needs {units} units but {spent} of the {budget}-unit budget are spent today "
                f"(Pacific day {day}); run again after midnight Pacific or raise --quota-budget"
            )
        self.data["quota"][day] = spent + units
        self.save()

    def get(self, video: str, language: str, name: str) -> dict[str, Any] | None:
        return self.data["tracks"].get(self.key(video, language, name))

    def record(self, c: Any, track_id: str, action: str, units: int) -> None:
        now = self.clock().astimezone(timezone.utc).isoformat(timespec="seconds")
        entry = {"video": c.video, "language": c.language, "name": c.name, "track_id": track_id,
                 "sha256": c.sha256, "draft": c.draft, "file": str(c.path), "units": units, "time": now}
        self.data["tracks"][self.key(c.video, c.language, c.name)] = entry
        self.data["log"].append({**entry, "action": action})
        self.save()

    def note(self, **event: Any) -> None:
        event.setdefault("time", self.clock().astimezone(timezone.utc).isoformat(timespec="seconds"))
        self.data["log"].append(event)
        self.save()

    def forget(self, track_id: str) -> None:
        tracks = self.data["tracks"]
        for k in [k for k, v in tracks.items() if v.get("track_id") == track_id]:
            del tracks[k]
        self.save()
