"""Employee metrics by unit, with anonymity that survives subtraction.

A group with fewer respondents than the anonymity minimum shows no value. That alone is
not enough: a parent's total minus its visible children would reveal the hidden child. So
when siblings are hidden, the next-smallest visible siblings are hidden too, until the hidden
group together has at least the minimum (then the difference describes a group that is
itself large enough to show).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pandas as pd
from sqlalchemy import Connection, func, select

from queries import metrics, schema
from queries.kpis import WaveCounts

ou = schema.org_unit
aeu = schema.agg_engagement_unit
aei = schema.agg_engagement
hc = schema.headcount


SMALL = "fewer than {minimum} respondents"
SUBTRACTION = "hidden so a smaller group cannot be worked out by subtraction"


def _lineage(parents: dict[str, str | None], unit: str | None) -> list[str]:
    """`unit`, its parent, and so on up to the root (a cycle in bad data stops the walk)."""
    chain: list[str] = []
    node = unit
    while node is not None and node not in chain:
        chain.append(node)
        node = parents.get(node)
    return chain


def suppress(respondents: dict[str, int], minimum: int) -> set[str]:
    """Units to hide among siblings with these respondent counts (see module docstring)."""
    hidden = {u for u, n in respondents.items() if 0 < n < minimum}
    visible = sorted((n, u) for u, n in respondents.items() if n >= minimum)
    while hidden and sum(respondents[u] for u in hidden) < minimum and visible:
        hidden.add(visible.pop(0)[1])
    return hidden


def hidden_in_wave(conn: Connection, *, wave: dt.date, minimum: int = 5) -> set[str]:
    """Every unit whose numbers must not be shown for `wave`, at every level of the tree:
    a unit with fewer than `minimum` respondents, the siblings hidden with it so it cannot be
    worked out by subtraction (`suppress`), and everything below a hidden unit."""
    return set(hidden_reasons(conn, wave=wave, minimum=minimum))


def hidden_reasons(conn: Connection, *, wave: dt.date, minimum: int = 5,
                   unit: str | Sequence[str] | None = None) -> dict[str, str]:
    """`hidden_in_wave` with the reason each unit is hidden, as the page says it: its own
    subtree is too small, or it is hidden so a smaller group cannot be worked out by
    subtraction. One read of the wave answers it for every unit of the tree; `unit` keeps
    the answer to the units at or below it (or them), decided among all their siblings."""
    counts = dict(conn.execute(
        select(aeu.c.org_unit_id, func.sum(aeu.c.respondents))
        .where(aeu.c.wave == wave).group_by(aeu.c.org_unit_id)).all())
    parents = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
    totals: dict[str, int] = dict.fromkeys(parents, 0)
    for member, n in counts.items():
        for node in _lineage(parents, member):
            if node in totals:
                totals[node] += int(n or 0)
    children: dict[str | None, list[str]] = {}
    for member, parent in parents.items():
        children.setdefault(parent, []).append(member)
    hidden: set[str] = set()
    for siblings in children.values():
        hidden |= suppress({u: totals[u] for u in siblings}, minimum)
    # Below a hidden unit everything is smaller still: hide the whole subtree.
    hidden |= {u for u in parents if not hidden.isdisjoint(_lineage(parents, u)[1:])}
    within = None if unit is None else {unit} if isinstance(unit, str) else set(unit)
    return {u: (SMALL.format(minimum=minimum) if totals[u] < minimum else SUBTRACTION)
            for u in hidden if totals.get(u, 0) > 0
            and (within is None or not within.isdisjoint(_lineage(parents, u)))}


def subtree_wave_counts(conn: Connection, *, wave: dt.date) -> Callable[[str], WaveCounts]:
    """`wave_counts` of every unit's subtree in `wave` from one read of the wave's rows
    (four queries, however many units), as a function of the unit. The same sums as
    `wave_counts(conn, wave=wave, unit=u)`, which asks the database once per unit."""
    parents = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())

    people: dict[str, list[int]] = {}
    for unit, resp, n, pro, det in conn.execute(
            select(aeu.c.org_unit_id, aeu.c.respondents, aeu.c.enps_n, aeu.c.enps_promoters,
                   aeu.c.enps_detractors).where(aeu.c.wave == wave)):
        for node in _lineage(parents, unit):
            acc = people.setdefault(node, [0, 0, 0, 0])
            for i, v in enumerate((resp, n, pro, det)):
                acc[i] += int(v or 0)
    items: dict[str, dict[str, list[float]]] = {}
    for unit, item, n, fav in conn.execute(
            select(aei.c.org_unit_id, aei.c.item, aei.c.n, aei.c.favourable)
            .where(aei.c.wave == wave)):
        for node in _lineage(parents, unit):
            acc = items.setdefault(node, {}).setdefault(item, [0, 0])
            acc[0] += int(n or 0)
            acc[1] += int(fav or 0)
    heads: dict[str, list[int]] = {}
    for unit, count in conn.execute(select(hc.c.org_unit_id, hc.c.headcount)
                                    .where(hc.c.wave == wave)):
        for node in _lineage(parents, unit):
            acc = heads.setdefault(node, [0, 0])
            acc[0] += int(count or 0)
            acc[1] += 1

    def counts_of(unit: str) -> WaveCounts:
        resp, n, pro, det = people.get(unit, [0, 0, 0, 0])
        shares = {i: fav / k for i, (k, fav) in items.get(unit, {}).items() if k}
        head = heads.get(unit)
        return WaveCounts(wave, resp, shares, n, pro, det, head[0] if head else None)

    return counts_of


def engagement_by_unit(conn: Connection, *, wave: dt.date, parent: str,
                       anonymity_min: int = 5) -> pd.DataFrame:
    """Engagement, eNPS and participation of each direct child of `parent` in a wave.

    Columns: unit, name, respondents, headcount, engagement, engagement_moe, enps, enps_moe,
    participation, hidden, reason. Hidden rows carry no numbers at all (respondent counts
    included: a count of 3 is itself a disclosure).
    """
    children = conn.execute(select(ou.c.id, ou.c.name).where(ou.c.parent_id == parent)
                            .order_by(ou.c.name)).all()
    counts_of = subtree_wave_counts(conn, wave=wave)
    rows = []
    for unit, name in children:
        w = counts_of(unit)
        eng = metrics.engagement(w.respondents, list(w.item_shares.values()))
        enps = metrics.nps(w.enps_n, w.enps_promoters, w.enps_detractors)
        rows.append({
            "unit": unit, "name": name, "respondents": w.respondents, "headcount": w.headcount,
            "engagement": eng.value, "engagement_moe": eng.moe, "enps": enps.value,
            "enps_moe": enps.moe,
            "participation": 100 * w.respondents / w.headcount if w.headcount else None,
        })
    frame = pd.DataFrame(rows, columns=["unit", "name", "respondents", "headcount",
                                        "engagement", "engagement_moe", "enps", "enps_moe",
                                        "participation"])
    reasons = hidden_reasons(conn, wave=wave, minimum=anonymity_min)
    frame["hidden"] = frame["unit"].isin(reasons)
    frame["reason"] = [reasons.get(u) for u in frame["unit"]]
    numbers = ["respondents", "headcount", "engagement", "engagement_moe", "enps", "enps_moe",
               "participation"]
    frame[numbers] = frame[numbers].astype("Float64")
    frame.loc[frame["hidden"], numbers] = pd.NA
    return frame
