"""'Signals disagree': only what the data supports, in one sentence per pair.

A disagreement is between two *related* measures (measures that usually move together) and
is one of two kinds:

* a *conflict*: both changed significantly and materially, one for the better and one for
  the worse (NPS up while effort worsens);
* a *divergence*: one changed significantly and materially, and the other's 95% interval of
  change rules out moving with it by a material amount (NPS up, CSAT's interval excludes a
  rise). "Not significant" alone is absence of evidence, not disagreement, so it is never
  enough.

Measures that are two readings of one thing (CES mean and CES % easy) form one signal: it
moved when either moved significantly, and never contradicts itself. A change that cannot be
tested (too few answers, a low sample) says nothing. Disagreements are ranked conflicts
first, then by size (the smaller of the two standardised moves for a conflict, the move for
a divergence); the page shows at most `SHOWN` and the rest behind "more". When none
disagree, `assess` says "Signals agree" with the one-line reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from queries.formatting import fmt_delta
from queries.kpis import LOWER_IS_BETTER, Kpi
from queries.periods import Month

# Signal families: the KPIs that read one thing. Employee KPIs compare survey waves, not
# months, and ticket sizes follow the product mix: pairing them would mislead.
FAMILIES: dict[str, tuple[str, ...]] = {
    "nps": ("nps",), "csat": ("csat",), "ces": ("ces", "ces_agree"), "retention": ("retention",),
}
NAMES = {"nps": "NPS", "csat": "CSAT", "ces": "Effort (CES)", "retention": "Retention"}
SIGNAL_KEYS = tuple(k for keys in FAMILIES.values() for k in keys)

# Smallest change worth a sentence: with ten thousand members a 0.5-point move in retention
# is significant, and still nothing an executive should act on.
MATERIAL = {"nps": 3.0, "csat": 2.0, "ces": 0.1, "ces_agree": 2.0, "retention": 1.0}

# Pairs expected to move together, with what a disagreement usually means.
RELATED: dict[tuple[str, str], str] = {
    ("nps", "ces"): "customers recommend differently from how easy they find it",
    ("csat", "ces"): "satisfaction and effort point different ways",
    ("nps", "csat"): "recommendation and satisfaction point different ways",
    ("csat", "retention"): "satisfaction scores and members' behaviour point different ways",
    ("nps", "retention"): "what customers say and what members do point different ways",
}
SHOWN = 3


@dataclass(frozen=True)
class Signal:
    """One disagreement between two signal families, with the sentence a person reads."""

    kind: str  # "conflict" or "divergence"
    first: str
    second: str
    text: str
    size: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True)
class Assessment:
    """What the signals say together: `status` "disagree", "agree" or "untested", the
    heading (with the period said once), the ranked disagreements split into those shown
    and the rest, and, when none disagree, the one-line reason."""

    status: str
    heading: str
    signals: list[Signal] = field(default_factory=list)
    reason: str = ""

    @property
    def shown(self) -> list[Signal]:
        """The disagreements shown at once (at most SHOWN)."""
        return self.signals[:SHOWN]

    @property
    def more(self) -> list[Signal]:
        """The rest, behind "more"."""
        return self.signals[SHOWN:]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"status": self.status, "heading": self.heading, "reason": self.reason,
                "signals": [s.as_dict() for s in self.signals]}


@dataclass(frozen=True)
class _Move:
    family: str
    direction: int  # +1 better, -1 worse, 0 no significant material move
    size: float  # |delta| / material of the strongest significant member
    words: str  # "+8.0 pts", "-0.30; % easy -3.5 pts"
    members: tuple[Kpi, ...]
    mixed: bool = False  # its readings moved significantly in opposite directions


def _better(kpi: Kpi) -> int:
    if not kpi.delta:
        return 0
    return 1 if (kpi.delta > 0) != (kpi.key in LOWER_IS_BETTER) else -1


def _usable(kpi: Kpi) -> bool:
    return (not kpi.hidden and not kpi.low_sample and kpi.compare is not None
            and kpi.delta is not None and kpi.significant is not None)


def _material(kpi: Kpi) -> bool:
    return bool(kpi.significant) and abs(kpi.delta or 0) >= MATERIAL[kpi.key]


def _delta_words(kpi: Kpi) -> str:
    return f"% easy {fmt_delta(kpi)}" if kpi.key == "ces_agree" else fmt_delta(kpi)


def _move(family: str, by_key: dict[str, Kpi]) -> _Move | None:
    members = tuple(by_key[k] for k in FAMILIES[family] if k in by_key)
    if not members:
        return None
    moved = [k for k in members if _material(k)]
    directions = {_better(k) for k in moved}
    if len(directions) > 1:
        # The two readings of one thing point different ways: no claim either way.
        return _Move(family, 0, 0.0, "", members, mixed=True)
    direction = directions.pop() if directions else 0
    size = max((abs(k.delta or 0) / MATERIAL[k.key] for k in moved), default=0.0)
    words = "; ".join(_delta_words(k) for k in (moved or members))
    return _Move(family, direction, size, words, members)


def _rules_out(move: _Move, direction: int) -> tuple[Kpi, float] | None:
    """When every reading of `move` has a 95% interval of change that excludes a material
    move in `direction` (better +1 / worse -1): the first reading, with the bound excluded.
    None when any reading is untested or still allows moving along."""
    found: tuple[Kpi, float] | None = None
    for k in move.members:
        if k.compare is None or k.compare.low is None or k.compare.high is None:
            return None
        sign = 1 if k.key not in LOWER_IS_BETTER else -1  # +1: a rise is better
        want = direction * sign  # the direction of the raw change that would go along
        bound = MATERIAL[k.key]
        if (want > 0 and k.compare.high >= bound) or (want < 0 and k.compare.low <= -bound):
            return None
        found = found or (k, bound)
    return found


def _verb(direction: int) -> str:
    return "improved" if direction > 0 else "worsened"


def disagreements(kpis: list[Kpi]) -> list[Signal]:
    """Every conflict and divergence among `kpis`, ranked (conflicts first, then by size)."""
    by_key = {k.key: k for k in kpis if k.key in SIGNAL_KEYS and _usable(k)}
    moves = {f: m for f in FAMILIES if (m := _move(f, by_key)) is not None}
    out: list[Signal] = []
    for (a, b), meaning in RELATED.items():
        if a not in moves or b not in moves:
            continue
        ma, mb = moves[a], moves[b]
        if ma.direction and mb.direction and ma.direction != mb.direction:
            text = (f"{NAMES[a]} {_verb(ma.direction)} ({ma.words}) while {NAMES[b]} "
                    f"{_verb(mb.direction)} ({mb.words}): {meaning}.")
            out.append(Signal("conflict", a, b, text, min(ma.size, mb.size)))
            continue
        for moved, other in ((ma, mb), (mb, ma)):
            if not moved.direction or other.direction or other.mixed:
                continue
            hit = _rules_out(other, moved.direction)
            if hit is None:
                continue
            k, bound = hit
            assert k.compare is not None and k.compare.low is not None
            assert k.compare.high is not None
            rise = "rise" if (moved.direction > 0) == (k.key not in LOWER_IS_BETTER) else "fall"
            span = f"{_num(k, k.compare.low)} to {_num(k, k.compare.high)}"
            its = "its change" if len(other.members) == 1 else f"{k.label} changed"
            text = (f"{NAMES[moved.family]} {_verb(moved.direction)} ({moved.words}) but "
                    f"{NAMES[other.family]} did not follow: {its}, {fmt_delta(k)} "
                    f"(95% interval {span}), rules out a {rise} of {_num(k, bound, False)} "
                    f"or more.")
            out.append(Signal("divergence", moved.family, other.family, text, moved.size))
    return sorted(out, key=lambda s: (s.kind != "conflict", -s.size))


def _num(kpi: Kpi, v: float, signed: bool = True) -> str:
    """A change bound in the KPI's units ('+1.1 pts', '-0.05')."""
    text = fmt_delta(replace(kpi, compare=replace(kpi.compare, delta=v))) if kpi.compare \
        else f"{v:+.1f}"
    return text if signed else text.lstrip("+-")


def assess(kpis: list[Kpi]) -> Assessment:
    """The signals' verdict for the overview, the PDF, the email and the command line."""
    signals = disagreements(kpis)
    ref = next((k for k in kpis if k.key in SIGNAL_KEYS and k.compare), None)
    when = ""
    if ref is not None and ref.compare is not None:
        when = (f" · {Month.parse(ref.period).label} against "
                f"{Month.parse(ref.compare.period).label}")
    if signals:
        return Assessment("disagree", "Signals disagree" + when, signals)
    by_key = {k.key: k for k in kpis if k.key in SIGNAL_KEYS and _usable(k)}
    if not by_key:
        return Assessment("untested", "Signals not tested" + when, [],
                          "Too few answers to test any change against its margin.")
    moves = {f: m for f in FAMILIES if (m := _move(f, by_key)) is not None}
    up = [NAMES[f] for f, m in moves.items() if m.direction > 0]
    down = [NAMES[f] for f, m in moves.items() if m.direction < 0]
    if not up and not down:
        reason = "no measure changed materially beyond its margin of error."
    else:
        parts = []
        if up:
            parts.append(f"{_join(up)} improved")
        if down:
            parts.append(f"{_join(down)} worsened")
        reason = (" and ".join(parts) + "; no related measure moved the other way or ruled "
                  "out moving with them.")
    return Assessment("agree", "Signals agree" + when, [], reason[0].upper() + reason[1:])


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
