"""Calendar months as reporting periods ("YYYY-MM")."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# Reporting periods live in this range: a year's shift either way (comparisons, trends) must
# stay inside what datetime can represent, and no business reports on year 1 or 9999.
MIN_YEAR, MAX_YEAR = 1900, 2999


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month; `start` inclusive, `end` exclusive."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse 'YYYY-MM', or raise ValueError saying what was expected."""
        match = _PERIOD.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"period {text!r}: expected YYYY-MM, for example 2026-10")
        year = int(match.group(1))
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise ValueError(f"period {text!r}: the year must be between {MIN_YEAR} and "
                             f"{MAX_YEAR}")
        return cls(year, int(match.group(2)))

    @classmethod
    def of(cls, day: dt.date) -> Month:
        """The month containing `day`."""
        return cls(day.year, day.month)

    @property
    def start(self) -> dt.datetime:
        """First instant of the month."""
        return dt.datetime(self.year, self.month, 1)

    @property
    def end(self) -> dt.datetime:
        """First instant of the next month."""
        return self.shift(1).start

    def shift(self, months: int) -> Month:
        """The month `months` later (negative: earlier)."""
        index = self.year * 12 + (self.month - 1) + months
        return Month(index // 12, index % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self) -> str:
        """Human label such as 'October 2026'."""
        return self.start.strftime("%B %Y")


def whole_months(first_day: dt.date, end_day: dt.date) -> list[str] | None:
    """The months ('YYYY-MM') of [first_day, end_day) when both are the first of a month,
    else None: the windows the ETL's month summaries can answer."""
    if first_day.day != 1 or end_day.day != 1 or end_day <= first_day:
        return None
    first, last = Month.of(first_day), Month.of(end_day).shift(-1)
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    return [str(first.shift(i)) for i in range(count)]
