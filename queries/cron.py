"""Standard crontab lines as APScheduler triggers, with crontab's weekday numbering."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _crontab_weekdays(field_: str) -> str:
    """A crontab day-of-week field in APScheduler's terms.

    Crontab counts 0 (or 7) = Sunday; APScheduler counts 0 = Monday, so from_crontab would
    shift numeric days by one. Numeric tokens become day names; names pass through.
    """
    out = []
    for token in field_.split(","):
        if token == "*" or re.search(r"[A-Za-z]", token):
            out.append(token)
            continue
        match = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", token)
        if not match:
            raise ValueError(f"day of week {token!r}")
        start, end, step = match.groups()
        lo, hi = (0, 6) if start == "*" else (int(start), int(end) if end else int(start))
        if step and start != "*" and not end:
            hi = 6
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi):
            raise ValueError(f"day of week {token!r}: expected 0-7 (0 and 7 are Sunday)")
        days = range(lo, hi + 1, int(step) if step else 1)
        out.extend(dict.fromkeys(_DOW[d % 7] for d in days))
    return ",".join(dict.fromkeys(out))


def cron_trigger(schedule: str, timezone: str | dt.tzinfo = "UTC") -> CronTrigger:
    """An APScheduler trigger for a standard 5-field crontab line (minute hour day month
    weekday) in `timezone`; ValueError for anything else."""
    fields = schedule.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_crontab_weekdays(weekday), timezone=tz)
