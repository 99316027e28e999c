"""'Signals disagree': the KPI pairs whose changes tell different stories, in words.

Two kinds. A *conflict*: both changed significantly, one for the better and one for the
worse (NPS up while CES worsens). A *divergence*: in a pair that should move together, one
changed significantly while the other, measured on a sample large enough to see it, stayed
steady (CSAT steady while retention falls). Both are what a single-metric dashboard hides.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

from queries.formatting import fmt_delta
from queries.kpis import LOWER_IS_BETTER, Kpi
from queries.periods import Month

# KPIs that carry a tested change over the same months and speak about different things.
# Mirrors (churn for retention, CES % easy for CES) would only repeat their twin; employee
# KPIs compare survey waves, not months, so pairing them with monthly changes would mislead.
SIGNAL_KEYS = ("nps", "csat", "ces", "retention", "member_ticket")

# Smallest change worth a sentence: with ten thousand members a 0.5-point move in retention
# is significant, and still nothing an executive should act on.
MATERIAL = {"nps": 3.0, "csat": 2.0, "ces": 0.1, "retention": 1.0, "member_ticket": 1.0}

# Pairs expected to move together, with what a divergence usually means.
RELATED = {
    ("nps", "ces"): "recommendation and effort usually move together",
    ("csat", "ces"): "satisfaction and effort usually move together",
    ("nps", "csat"): "recommendation and satisfaction usually move together",
    ("csat", "retention"): "satisfied members usually stay",
    ("nps", "retention"): "promoters usually stay",
}

MEANING = {
    ("ces", "nps"): "customers recommend more but find it harder to get things done; the gain "
                    "may not last if effort keeps rising",
    ("ces", "csat"): "customers are happier but find it harder to get things done",
    ("csat", "retention"): "satisfaction scores and members' behaviour point different ways",
    ("nps", "retention"): "what customers say and what members do point different ways",
}


@dataclass(frozen=True)
class Signal:
    """One disagreement between two KPIs, with a sentence a person can read."""

    kind: str  # "conflict" or "divergence"
    first: str
    second: str
    text: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return asdict(self)


def _better(kpi: Kpi) -> bool | None:
    if kpi.delta is None or kpi.delta == 0:
        return None
    return (kpi.delta > 0) != (kpi.key in LOWER_IS_BETTER)


def _moved(kpi: Kpi) -> str:
    verb = "improved" if _better(kpi) else "worsened"
    return f"{kpi.label} {verb} ({fmt_delta(kpi)}, significant)"


def _usable(kpi: Kpi) -> bool:
    return not kpi.hidden and not kpi.low_sample and kpi.compare is not None


def _material(kpi: Kpi) -> bool:
    return bool(kpi.significant) and abs(kpi.delta or 0) >= MATERIAL.get(kpi.key, 0)


def disagreements(kpis: list[Kpi]) -> list[Signal]:
    """The conflicts and divergences among `kpis` (changes against their comparison)."""
    by_key = {k.key: k for k in kpis if k.key in SIGNAL_KEYS and _usable(k)}
    out: list[Signal] = []
    for a, b in combinations([k for k in SIGNAL_KEYS if k in by_key], 2):
        ka, kb = by_key[a], by_key[b]
        when = _when(ka)
        if _material(ka) and _material(kb) and _better(ka) != _better(kb):
            meaning = MEANING.get(tuple(sorted((a, b))))
            text = f"{_moved(ka)} while {_moved(kb)}{when}"
            out.append(Signal("conflict", a, b, text + (f": {meaning}." if meaning else ".")))
            continue
        reason = RELATED.get((a, b)) or RELATED.get((b, a))
        if reason is None:
            continue
        moved, steady = (ka, kb) if _material(ka) else (kb, ka)
        if _material(moved) and steady.significant is False:
            text = (f"{_moved(moved)} while {steady.label} held steady "
                    f"({fmt_delta(steady)}, not significant){when}; {reason}.")
            out.append(Signal("divergence", moved.key, steady.key, text))
    return sorted(out, key=lambda sig: sig.kind != "conflict")


def _when(kpi: Kpi) -> str:
    if not kpi.compare:
        return ""
    return f" ({Month.parse(kpi.period).label} against {Month.parse(kpi.compare.period).label})"
