"""How numbers and names are written: one money precision per kind of measure, source display
names, and chart labels that never collide."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.components.charts import place_labels
from queries.formatting import decimals, fmt_delta, fmt_moe, fmt_money, fmt_value
from queries.health import source_title, source_titles
from queries.kpis import MONEY, Comparison, Kpi


def _kpi(key: str, unit: str, value: float, delta: float | None = None,
         moe: float | None = None) -> Kpi:
    compare = (Comparison("2026-09", value - delta, 100, delta, None, None)
               if delta is not None else None)
    return Kpi(key, key, unit, "2026-10", value, 100, moe, compare=compare)


def test_money_totals_are_whole_pounds_whatever_their_size() -> None:
    # The pair: "-£614.71" beside "£39,174". A total and its change: both whole.
    revenue = _kpi("revenue", MONEY, 39174.2, delta=-614.71)
    assert fmt_value(revenue) == "£39,174"
    assert fmt_delta(revenue) == "-£615"
    assert fmt_value(_kpi("revenue", MONEY, 614.71)) == "£615"
    assert fmt_value(_kpi("revenue", MONEY, 0.4)) == "£0"


def test_money_per_person_is_to_the_penny_whatever_its_size() -> None:
    spend = _kpi("spend_per_member", MONEY, 43.956, delta=-0.7)
    assert fmt_value(spend) == "£43.96"
    assert fmt_delta(spend) == "-£0.70"
    assert fmt_value(_kpi("member_ticket", MONEY, 1234.5)) == "£1,234.50"
    assert fmt_moe(_kpi("member_ticket", MONEY, 51.6, moe=2.519)) == "±£2.52"


@pytest.mark.parametrize(("key", "unit", "places"), [
    ("nps", "pts", 1), ("csat", "%", 1), ("ces", "/7", 2), ("revenue", MONEY, 0),
    ("spend_per_member", MONEY, 2), ("active_members", "members", 0), ("enps", "pts", 1),
])
def test_one_precision_per_kind(key: str, unit: str, places: int) -> None:
    assert decimals(key, unit) == places


def test_fmt_money() -> None:
    assert fmt_money(1234.5) == "£1,234" and fmt_money(1235.5) == "£1,236"  # half to even
    assert fmt_money(-3.456, per_head=True) == "-£3.46"
    assert fmt_money(12.0, per_head=True, signed=True) == "+£12.00"


def test_source_titles_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "sources.toml"
    config.write_text('[[source]]\nname = "customer_survey"\ntitle = "Web survey"\n'
                      '[[source]]\nname = "loyalty_db"\n')
    titles = source_titles(config)
    assert titles == {"customer_survey": "Web survey", "loyalty_db": "Loyalty db"}
    assert source_title("customer_survey", titles) == "Web survey"
    assert source_title("engagement-waves", titles) == "Engagement waves"  # not in config
    (tmp_path / "broken.toml").write_text("[[source]\nname = ")
    assert source_titles(tmp_path / "broken.toml") == {}
    assert source_titles(tmp_path / "missing.toml") == {}


def _boxes(names, xs, ys, texts, spots, width=640, height=240, font=10, r=6):
    """The label boxes as place_labels models them, to check them independently."""
    span_x, span_y = (max(xs) - min(xs)) or 1, (max(ys) - min(ys)) or 1
    out = []
    for name, x, y, text, spot in zip(names, xs, ys, texts, spots, strict=True):
        if not text:
            continue
        px, py = (x - min(xs)) / span_x * width * 0.9, (y - min(ys)) / span_y * height * 0.9
        w, h = 0.62 * font * len(name), 1.3 * font
        v, hz = spot.split()
        cx = px + {"center": 0, "right": r + w / 2, "left": -r - w / 2}[hz]
        cy = py + {"top": r + h / 2, "bottom": -r - h / 2, "middle": 0}[v]
        out.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return out


def test_labels_of_close_points_do_not_collide() -> None:
    # Plymouth and Oxford almost on top of each other, as in the screenshot.
    names = ["Plymouth", "Oxford", "Leeds", "York", "Bristol"]
    xs, ys = [60.0, 60.4, 40.0, 75.0, 50.0], [70.0, 70.3, 50.0, 80.0, 65.0]
    texts, spots = place_labels(names, xs, ys)
    boxes = _boxes(names, xs, ys, texts, spots)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    # The far-apart points are all named; of the close pair at least one is, at another spot.
    assert texts[2:] == ["Leeds", "York", "Bristol"]
    assert "Plymouth" in texts or "Oxford" in texts
    if texts[0] and texts[1]:
        assert spots[0] != spots[1]


def test_a_point_named_first_keeps_its_label() -> None:
    names = ["Plymouth", "Oxford"]
    texts, _ = place_labels(names, [60.0, 60.0], [70.0, 70.0], first=[1])
    assert texts[1] == "Oxford"
