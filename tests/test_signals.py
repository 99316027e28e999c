"""'Signals disagree' in words: conflicts, divergences, and what is not worth a sentence."""

from __future__ import annotations

from queries.kpis import Comparison, Filters, Kpi, kpis
from queries.periods import Month
from queries.signals import disagreements


def _kpi(key: str, label: str, unit: str, delta: float, significant: bool,
         n: int = 500) -> Kpi:
    return Kpi(key=key, label=label, unit=unit, period="2026-10", value=50.0, n=n, moe=2.0,
               compare=Comparison("2026-09", 50.0 - delta, n, delta, 3.0 if significant else 0.5,
                                  significant))


def test_nps_up_while_ces_worsens_is_a_conflict() -> None:
    signals = disagreements([_kpi("nps", "NPS", "pts", +8.0, True),
                             _kpi("ces", "CES", "/7", -0.4, True)])
    assert [(s.kind, s.first, s.second) for s in signals] == [("conflict", "nps", "ces")]
    assert signals[0].text.startswith(
        "NPS improved (+8.0 pts, significant) while CES worsened (-0.40, significant) "
        "(October 2026 against September 2026)")
    assert "harder to get things done" in signals[0].text


def test_csat_steady_while_retention_falls_is_a_divergence() -> None:
    signals = disagreements([_kpi("csat", "CSAT", "%", +0.5, False),
                             _kpi("retention", "Retention", "%", -3.0, True)])
    assert [(s.kind, s.first, s.second) for s in signals] == [
        ("divergence", "retention", "csat")]
    assert "Retention worsened (-3.0 pts, significant) while CSAT held steady" in signals[0].text


def test_agreeing_small_or_unreliable_changes_say_nothing() -> None:
    assert disagreements([_kpi("nps", "NPS", "pts", +8.0, True),
                          _kpi("csat", "CSAT", "%", +3.0, True)]) == []  # both better
    # Significant but immaterial (a 0.5-point retention move on a large base).
    assert disagreements([_kpi("nps", "NPS", "pts", +8.0, True),
                          _kpi("retention", "Retention", "%", -0.5, True, n=20_000)]) == []
    low = _kpi("ces", "CES", "/7", -0.9, True, n=12)
    low = Kpi(**{**low.__dict__, "low_sample": True})
    assert disagreements([_kpi("nps", "NPS", "pts", +8.0, True), low]) == []


def test_the_demo_west_region_is_flagged(demo_engine) -> None:
    """The demo carries one region whose NPS rises while its effort worsens."""
    with demo_engine.connect() as conn:
        west = kpis(conn, period=Month(2026, 10), filters=Filters(unit="R-WEST"))
    by_key = {k.key: k for k in west}
    assert by_key["nps"].delta > 0 and by_key["nps"].significant
    assert by_key["ces"].delta < 0 and by_key["ces"].significant
    assert [s.kind for s in disagreements(west) if (s.first, s.second) == ("nps", "ces")] == [
        "conflict"]
