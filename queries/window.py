"""Survey and sales measures over any run of whole months, with the counts behind them.

`python -m queries kpis --from 2026-01 --to 2026-06` (or `--months 6`) prints these, so an
analyst can check a figure against a spreadsheet: every value comes with the counts it is
made of (answers, promoters, passives, detractors, top-2-box answers...), summed from the
same rollups and turned into values by the same formulas (`queries.metrics`) as the
dashboard's monthly KPIs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Connection

from queries import metrics
from queries.kpis import Filters, sales_counts, survey_counts
from queries.periods import Month


@dataclass(frozen=True)
class WindowKpis:
    """Measures of the months `first`..`last` (inclusive) within `filters`.

    `counts`: responses, nps_n, promoters, passives, detractors, csat_n, csat_top2, ces_n,
    ces_agree, revenue, txns. Estimates carry value, n and 95% margin.
    """

    first: Month
    last: Month
    months: int
    counts: dict[str, float]
    nps: metrics.Estimate
    csat: metrics.Estimate
    ces: metrics.Estimate
    ces_agree: metrics.Estimate

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out = asdict(self)
        out["first"], out["last"] = str(self.first), str(self.last)
        return out


def month_range(first: Month, last: Month) -> list[Month]:
    """Every month from `first` to `last`, both included."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    out = [first]
    while out[-1] < last:
        out.append(out[-1].shift(1))
    return out


def window_kpis(conn: Connection, *, first: Month, last: Month,
                filters: Filters | None = None) -> WindowKpis:
    """NPS, CSAT (top-2-box), CES (mean, % easy), revenue and transactions over the months
    `first`..`last`, with the counts they are made of; passives = NPS answers - promoters -
    detractors."""
    filters = filters or Filters()
    months = month_range(first, last)
    s = survey_counts(conn, months=months, filters=filters)
    t = sales_counts(conn, months=months, filters=filters)
    n, pro, det = int(s["nps_n"]), int(s["nps_promoters"]), int(s["nps_detractors"])
    counts = {
        "responses": int(s["responses"]), "nps_n": n, "promoters": pro,
        "passives": n - pro - det, "detractors": det, "csat_n": int(s["csat_n"]),
        "csat_top2": int(s["csat_top2"]), "ces_n": int(s["ces_n"]),
        "ces_agree": int(s["ces_agree"]), "revenue": float(t["revenue"]),
        "txns": int(t["txns"]),
    }
    return WindowKpis(
        first=first, last=last, months=len(months), counts=counts,
        nps=metrics.nps(n, pro, det),
        csat=metrics.share(int(s["csat_n"]), int(s["csat_top2"])),
        ces=metrics.mean_t(int(s["ces_n"]), float(s["ces_sum"]), float(s["ces_sumsq"])),
        ces_agree=metrics.share(int(s["ces_n"]), int(s["ces_agree"])),
    )
