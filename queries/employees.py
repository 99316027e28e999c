"""Employee metrics by unit, with anonymity that survives subtraction.

A group with fewer respondents than the anonymity minimum shows no value. That alone is
not enough: a parent's total minus its visible children would reveal the hidden child. So
when siblings are hidden, the next-smallest visible siblings are hidden too, until the hidden
group together has at least the minimum (then the difference describes a group that is
itself large enough to show).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection, func, select

from queries import metrics, schema
from queries.kpis import wave_counts

ou = schema.org_unit
aeu = schema.agg_engagement_unit


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
    counts = dict(conn.execute(
        select(aeu.c.org_unit_id, func.sum(aeu.c.respondents))
        .where(aeu.c.wave == wave).group_by(aeu.c.org_unit_id)).all())
    parents = dict(conn.execute(select(ou.c.id, ou.c.parent_id)).all())
    totals: dict[str, int] = dict.fromkeys(parents, 0)
    for unit, n in counts.items():
        node = unit
        while node is not None and node in totals:
            totals[node] += int(n or 0)
            node = parents.get(node)
    children: dict[str | None, list[str]] = {}
    for unit, parent in parents.items():
        children.setdefault(parent, []).append(unit)
    hidden: set[str] = set()
    for siblings in children.values():
        hidden |= suppress({u: totals[u] for u in siblings}, minimum)
    # Below a hidden unit everything is smaller still: hide the whole subtree.
    for unit in list(parents):
        node = parents.get(unit)
        while node is not None:
            if node in hidden:
                hidden.add(unit)
                break
            node = parents.get(node)
    return {u for u in hidden if totals.get(u, 0) > 0}


def engagement_by_unit(conn: Connection, *, wave: dt.date, parent: str,
                       anonymity_min: int = 5) -> pd.DataFrame:
    """Engagement, eNPS and participation of each direct child of `parent` in a wave.

    Columns: unit, name, respondents, headcount, engagement, engagement_moe, enps, enps_moe,
    participation, hidden, reason. Hidden rows carry no numbers at all (respondent counts
    included: a count of 3 is itself a disclosure).
    """
    children = conn.execute(select(ou.c.id, ou.c.name).where(ou.c.parent_id == parent)
                            .order_by(ou.c.name)).all()
    parent_counts = wave_counts(conn, wave=wave, unit=parent)
    rows = []
    for unit, name in children:
        w = wave_counts(conn, wave=wave, unit=unit)
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
    counts = dict(zip(frame["unit"], frame["respondents"], strict=True))
    small = {u for u, n in counts.items() if 0 < n < anonymity_min}
    hidden = hidden_in_wave(conn, wave=wave, minimum=anonymity_min) & set(counts)
    if 0 < parent_counts.respondents < anonymity_min:
        hidden = {u for u, n in counts.items() if n > 0}
    frame["hidden"] = frame["unit"].isin(hidden)
    frame["reason"] = [
        None if u not in hidden else (
            f"fewer than {anonymity_min} respondents" if u in small
            else "hidden so a smaller group cannot be worked out by subtraction")
        for u in frame["unit"]
    ]
    numbers = ["respondents", "headcount", "engagement", "engagement_moe", "enps", "enps_moe",
               "participation"]
    frame[numbers] = frame[numbers].astype("Float64")
    frame.loc[frame["hidden"], numbers] = pd.NA
    return frame
