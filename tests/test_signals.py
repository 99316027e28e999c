"""'Signals disagree' says only what the data supports: conflicts, divergences whose interval
rules out moving together, one signal for CES mean and CES % easy, ranking, "Signals agree"
with its reason. Hand-built KPIs: every number below is the input or read off it."""

from __future__ import annotations

from queries.kpis import Comparison, Filters, Kpi, kpis
from queries.periods import Month
from queries.signals import SHOWN, assess, disagreements

UNITS = {"nps": ("NPS", "pts"), "csat": ("CSAT", "%"), "ces": ("CES", "/7"),
         "ces_agree": ("CES % easy", "%"), "retention": ("Retention", "%")}


def _kpi(key: str, delta: float, significant: bool | None, low: float | None = None,
         high: float | None = None, n: int = 500, low_sample: bool = False) -> Kpi:
    label, unit = UNITS[key]
    if low is None:  # a default interval of +-1.5 units (pts) or 0.05 (CES) around delta
        half = 0.05 if key == "ces" else 1.5
        low, high = delta - half, delta + half
    return Kpi(key=key, label=label, unit=unit, period="2026-10", value=50.0, n=n, moe=2.0,
               compare=Comparison("2026-09", 50.0 - delta, n, delta,
                                  3.0 if significant else 0.5, significant, low, high),
               low_sample=low_sample)


def test_nps_up_while_effort_worsens_is_one_conflict_sentence() -> None:
    items = [_kpi("nps", +8.0, True), _kpi("ces", -0.30, True)]
    signals = disagreements(items)
    assert [(s.kind, s.first, s.second) for s in signals] == [("conflict", "nps", "ces")]
    assert signals[0].text == ("NPS improved (+8.0 pts) while Effort (CES) worsened (-0.30): "
                               "customers recommend differently from how easy they find it.")
    verdict = assess(items)
    # The period is said once, in the heading, not in every sentence.
    assert verdict.heading == "Signals disagree · October 2026 against September 2026"
    assert "October" not in signals[0].text


def test_ces_mean_and_ces_easy_are_one_signal() -> None:
    # The table's "CES % easy -3.5 pts *" is the effort signal even though the CES mean
    # (-0.02) is not significant: never "CES held steady" beside it.
    items = [_kpi("nps", +5.0, True), _kpi("ces", -0.02, False, -0.10, 0.06),
             _kpi("ces_agree", -3.5, True)]
    signals = disagreements(items)
    assert [(s.kind, s.first, s.second) for s in signals] == [("conflict", "nps", "ces")]
    assert "Effort (CES) worsened (% easy -3.5 pts)" in signals[0].text
    assert "held steady" not in signals[0].text
    # The two readings never disagree with each other...
    assert disagreements([_kpi("ces", -0.30, True), _kpi("ces_agree", -3.5, True)]) == []
    # ...and when they point different ways, the effort signal claims nothing at all.
    mixed = [_kpi("nps", +5.0, True), _kpi("ces", +0.30, True), _kpi("ces_agree", -3.5, True)]
    assert disagreements(mixed) == []


def test_a_divergence_needs_an_interval_that_rules_out_moving_together() -> None:
    # Retention -3.0 pts (significant). CSAT +0.5, interval -1.0 to +2.0: a fall of 2 pts
    # (CSAT's material change) lies outside it, so CSAT did not follow: a divergence.
    items = [_kpi("csat", +0.5, False, -1.0, 2.0), _kpi("retention", -3.0, True)]
    signals = disagreements(items)
    assert [(s.kind, s.first, s.second) for s in signals] == [
        ("divergence", "retention", "csat")]
    assert signals[0].text == (
        "Retention worsened (-3.0 pts) but CSAT did not follow: its change, +0.5 pts "
        "(95% interval -1.0 pts to +2.0 pts), rules out a fall of 2.0 pts or more.")
    # CSAT's interval -3.0 to +2.0 allows the fall: absence of evidence, no sentence.
    wide = [_kpi("csat", -0.5, False, -3.0, 2.0), _kpi("retention", -3.0, True)]
    assert disagreements(wide) == []
    assert assess(wide).status == "agree"


def test_small_untested_or_immaterial_changes_say_nothing() -> None:
    # Agreeing directions.
    assert disagreements([_kpi("nps", +8.0, True), _kpi("csat", +3.0, True)]) == []
    # Significant but immaterial both (NPS needs 3 pts, CES 0.1).
    assert disagreements([_kpi("nps", +2.0, True), _kpi("ces", -0.05, True)]) == []
    # Too few answers to test: significant None, never a signal.
    untested = [_kpi("nps", +150.0, None, n=6, low_sample=True),
                _kpi("ces", -0.5, None, n=6, low_sample=True)]
    assert disagreements(untested) == []
    verdict = assess(untested)
    assert verdict.status == "untested" and verdict.reason.startswith("Too few answers")


def test_signals_agree_says_why() -> None:
    verdict = assess([_kpi("nps", +5.0, True), _kpi("csat", +3.0, True),
                      _kpi("ces", 0.01, False, -0.2, 0.2)])
    assert verdict.status == "agree" and verdict.signals == []
    assert verdict.heading == "Signals agree · October 2026 against September 2026"
    assert verdict.reason.startswith("NPS and CSAT improved;")
    quiet = assess([_kpi("nps", +1.0, False), _kpi("csat", -0.5, False)])
    assert quiet.reason == "No measure changed materially beyond its margin of error."


def test_ranked_by_size_three_shown_the_rest_behind_more() -> None:
    # NPS +12 (4x material) and CSAT +8 (4x) against effort -0.2 (2x) and retention -5 (5x):
    # four conflicts; each ranks by the smaller of its two standardised moves.
    items = [_kpi("nps", +12.0, True), _kpi("csat", +8.0, True), _kpi("ces", -0.2, True),
             _kpi("retention", -5.0, True)]
    verdict = assess(items)
    pairs = [(s.first, s.second) for s in verdict.signals]
    assert set(pairs) == {("nps", "ces"), ("csat", "ces"), ("csat", "retention"),
                          ("nps", "retention")}
    sizes = [s.size for s in verdict.signals]
    assert sizes == sorted(sizes, reverse=True)
    # min(4, 5) = 4 for the retention pairs, min(4, 2) = 2 for the effort pairs.
    assert sizes == [4.0, 4.0, 2.0, 2.0]
    assert len(verdict.shown) == SHOWN == 3 and len(verdict.more) == 1


def test_the_demo_west_region_is_flagged(demo_engine) -> None:
    """The demo carries one region whose NPS rises while its effort worsens."""
    with demo_engine.connect() as conn:
        west = kpis(conn, period=Month(2026, 10), filters=Filters(unit="R-WEST"))
    by_key = {k.key: k for k in west}
    assert by_key["nps"].delta > 0 and by_key["nps"].significant
    assert by_key["ces"].delta < 0 and by_key["ces"].significant
    assert [s.kind for s in disagreements(west) if (s.first, s.second) == ("nps", "ces")] == [
        "conflict"]
