"""CSV/XLSX downloads of exactly the data a chart or table shows.

A page registers, per chart, the function that builds the chart's DataFrame from the view
state; the chart's callback and the download both call it, so the file holds the shown rows.
`download_file` turns that frame into the file a person opens: human column names, numbers
rounded to the precision the screen shows, no internal columns, spreadsheet formulas
neutralised, a file name that says the view, and in XLSX a second sheet with the view's
filters, period, column definitions and the data's freshness.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import html

Builder = Callable[[dict[str, str]], pd.DataFrame]
DOWNLOADS: dict[str, Builder] = {}

# Join keys and drill targets the page uses to link rows; a reader has no use for them.
INTERNAL = {"key", "drill", "id", "run_id", "subscription_id", "message_id", "claimed_by"}
# Page state that changes what a file holds, written into its name after the filters.
NAME_KEYS = ("by", "metric", "outcome", "lag", "months", "group", "wave", "source")
FILTER_LABELS = {"period": "Period", "compare": "Compared with", "unit": "Unit",
                 "segment": "Segment", "channel": "Channel", "device": "Device",
                 "interaction": "Interaction", "touchpoint": "Touchpoint"}
OPTION_LABELS = {"by": "Broken down by", "metric": "Measure", "outcome": "Outcome",
                 "lag": "Lag (months)", "months": "Window (months)", "group": "NPS group",
                 "wave": "Wave", "source": "Source", "q": "Comment search"}

# Decimal places per measure: the same as the screen writes them (queries.formatting).
MEASURE_DECIMALS = {"nps": 1, "enps": 1, "csat": 1, "ces": 2, "ces_agree": 1,
                    "engagement": 1, "participation": 1, "retention": 1, "redemption": 1,
                    "revenue": 0, "active_members": 0, "score": 1,
                    "performance_mean_1_5": 2}
MEASURE_LABELS = {"nps": "NPS", "enps": "eNPS", "csat": "CSAT (% 4–5)",
                  "ces": "CES (mean 1–7)", "ces_agree": "CES % easy (5–7)",
                  "engagement": "Engagement (% favourable)", "participation": "Participation (%)",
                  "retention": "Retention (%)", "redemption": "Redemption rate (%)",
                  "revenue": "Revenue (£)", "active_members": "Active members"}
ROW = -1  # decimals differ per row (a column of mixed measures): frame.attrs["row_decimals"]
SAME = -2  # as the frame's measure column (a margin beside the value it belongs to)

# name -> (label, decimals or None to leave as is, definition for the file's notes)
COLUMNS: dict[str, tuple[str, int | None, str]] = {
    "kpi": ("Measure", None, "Which measure the row is about."),
    "period": ("Period", None, "The month shown (YYYY-MM)."),
    "value": ("Value", ROW, "The measure's value in its own unit, as the card shows it."),
    "shown": ("As shown", None, "The value written as the dashboard writes it."),
    "n": ("n", 0, "People or answers behind the figure."),
    "margin_95": ("95% margin (±)", SAME,
                  "Half-width of the 95% confidence interval, in the measure's unit."),
    "compare_period": ("Compared with", None, "The comparison month."),
    "compare_value": ("Value then", ROW, "The value in the comparison month."),
    "change": ("Change", ROW, "Value minus the comparison month's value."),
    "z": ("z", 2, "Test statistic of the change; |z| ≥ 1.96 is significant at 95%."),
    "significant": ("Significant", None,
                    "Whether the change is statistically significant at 95%."),
    "yoy_period": ("Same month last year", None, ""),
    "yoy_change": ("Change vs last year", ROW, ""),
    "yoy_significant": ("Significant vs last year", None, ""),
    "test": ("Test", None, "The verdict on the change: significant, not significant, or too "
                           "few answers to test."),
    "yoy_test": ("Test vs last year", None, ""),
    "not_applicable": ("Not applicable because", None,
                       "Why the measure cannot be computed for these filters."),
    "low_sample": ("Low sample", None, "Fewer answers than the minimum n: read with care."),
    "hidden": ("Hidden", None, "Hidden to protect the anonymity of a small group."),
    "filters_not_applied": ("Filters not applied", None,
                            "Filters this measure cannot be cut by."),
    "month": ("Month", None, ""), "label": ("Month name", None, ""),
    "wave": ("Wave", None, "Date of the engagement survey wave."),
    "respondents": ("Respondents", 0, "Staff who answered."),
    "headcount": ("Headcount", 0, "Staff of the unit."),
    "reason": ("Reason", None, ""),
    "outcome": ("Customer measure", None, "NPS or CSAT: which customer score is shown."),
    "score": ("Customer score", 1, "The customer score (NPS, or CSAT %) over the months "
                                   "shown."),
    "waves": ("Waves", 0, ""),
    "group": ("NPS group", None, "Promoter (9–10), passive (7–8) or detractor (0–6)."),
    "answers": ("Answers", 0, "Survey answers in the group."),
    "revenue_per_answer": ("Revenue per answer (£)", 2,
                           "Mean spend in the window after answering."),
    "ci95_low": ("95% CI low (£)", 2, ""), "ci95_high": ("95% CI high (£)", 2, ""),
    "sd": ("Standard deviation", 2, ""),
    "total_revenue": ("Total revenue (£)", 0, ""),
    "window_days": ("Window (days)", 0, ""),
    "churned": ("Churned", 0, ""), "churn_pct": ("Churn (%)", 1, ""),
    "ci95_low_pct": ("95% CI low (%)", 1, ""), "ci95_high_pct": ("95% CI high (%)", 1, ""),
    "churn_days": ("Churn window (days)", 0, ""),
    "measure": ("Measure", None, ""), "value_gbp": ("Value (£)", 0, ""),
    "detractor_answers": ("Detractor answers", 0, ""),
    "churn_gap_pts": ("Churn gap (pts)", 1, "Detractor churn minus promoter churn."),
    "churn_gap_p": ("Churn gap p-value", 3, ""),
    "churn_gap_significant": ("Churn gap significant", None, ""),
    "score_month": ("Score month", None, ""),
    "prev_revenue": ("Revenue the month before (£)", 0, ""),
    "growth": ("Revenue growth (share)", 3, "Revenue / previous month's revenue - 1."),
    "metric": ("Measure", None, ""), "lag": ("Lag (months)", 0, ""),
    "responses": ("Responses", 0, "Survey answers in the group."),
    "attribute": ("Attribute", None, ""), "priority": ("Priority", None, ""),
    "importance_pct_of_r2": ("Importance (% of what the ratings explain)", 1,
                             "Share of the explained variation of the outcome carried by this "
                             "rating (relative weights)."),
    "relative_weight": ("Relative weight", 3, ""),
    "r": ("Correlation r", 2, "Correlation of the rating with the outcome."),
    "performance_mean_1_5": ("Performance (mean 1–5)", 2, "Mean rating, 1-5."),
    "ratings": ("Ratings", 0, ""), "coverage_pct": ("Coverage (%)", 1, ""),
    "submitted_at": ("Submitted", None, ""), "unit_name": ("Unit", None, ""),
    "touchpoint": ("Touchpoint", None, ""), "channel": ("Channel", None, ""),
    "device": ("Device", None, ""), "interaction": ("Interaction", None, ""),
    "segment": ("Segment", None, ""), "nps_group": ("NPS group", None, ""),
    "comment": ("Comment", None, ""),
    "source": ("Source", None, ""), "started_at": ("Started", None, ""),
    "finished_at": ("Finished", None, ""), "status": ("Status", None, ""),
    "rows_read": ("Rows read", 0, ""), "rows_inserted": ("Rows loaded", 0, ""),
    "rows_updated": ("Rows updated", 0, ""), "rows_quarantined": ("Rows quarantined", 0, ""),
    "rows_skipped": ("Rows skipped", 0, ""), "watermark": ("Watermark", None, ""),
    "error": ("Error", None, ""), "notes": ("Notes", None, ""),
    "last_success": ("Last success", None, ""), "stale": ("Stale", None, ""),
    "file": ("File", None, ""), "line": ("Line", 0, ""), "field": ("Field", None, ""),
    "created_at": ("Quarantined at", None, ""), "table": ("Table", None, ""),
    "rows": ("Rows", 0, ""), "seconds": ("Seconds", 1, ""),
    "recipient": ("Recipient", None, ""), "name": ("Name", None, ""),
    "scope": ("Scope", None, ""), "attempts": ("Attempts", 0, ""),
    "claimed_at": ("Claimed", None, ""), "sent_at": ("Sent", None, ""),
    "stale_data": ("Stale data", None, ""), "email": ("E-mail", None, ""),
    "paper": ("Paper", None, ""), "landscape": ("Landscape", None, ""),
    "schedule": ("Schedule", None, ""), "active": ("Active", None, ""),
}
SUFFIXES = (("_moe", " 95% margin (±)"), ("_n", " n"), ("_delta", " change"),
            ("_significant", " significant"), ("_low_sample", " low sample"),
            ("_shown", " as shown"))
# OWASP "CSV injection": a cell starting with one of these is run as a formula by
# spreadsheets. A plain signed number ('-3.5', '+43.8', '-£615', '81.7%') is read as a
# number, not a formula, so it is left as the screen writes it.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?£?\d[\d,]*(\.\d+)?%?")


def downloadable(target: str) -> Callable[[Builder], Builder]:
    """Register `fn(state) -> DataFrame` as the data behind download target `target`."""

    def register(fn: Builder) -> Builder:
        DOWNLOADS[target] = fn
        return fn

    return register


def download_buttons(target: str) -> html.Div:
    """The CSV and XLSX buttons of one chart or table."""
    return html.Div(
        [
            dbc.Button("CSV", id={"type": "download", "target": target, "fmt": "csv"},
                       size="sm", color="link", className="px-1 py-0",
                       title="Download the data shown as CSV"),
            dbc.Button("XLSX", id={"type": "download", "target": target, "fmt": "xlsx"},
                       size="sm", color="link", className="px-1 py-0",
                       title="Download the data shown as an Excel workbook"),
        ],
        className="cx-downloads d-print-none",
    )


def panel(title: str, body: object, *, target: str | None = None, note: str | None = None,
          id_: str | None = None, fill: bool = False) -> dbc.Card:
    """A titled card around a chart or table, with its downloads and a footnote; `fill`
    makes it as tall as its column, so panels side by side line up."""
    header = html.Div(
        [html.H3(title, className="h6 mb-0"), download_buttons(target) if target else None],
        className="d-flex justify-content-between align-items-center",
    )
    children = [header, body]
    if note:
        children.append(html.Div(note, className="cx-note text-muted small mt-1"))
    return dbc.Card(dbc.CardBody(children), className="cx-panel " + ("h-100" if fill else "mb-3"),
                    **({"id": id_} if id_ else {}))


# ------------------------------------------------------------------------ the file itself


def column_label(name: str, columns: list[str] | None = None) -> str:
    """The heading a person reads for column `name` ('nps_moe' -> 'NPS 95% margin (±)')."""
    columns = columns or []
    if name == "unit":
        # Beside a name column the unit column holds codes (S01); alone it holds names.
        return "Unit code" if {"name", "unit_name"} & set(columns) else "Unit"
    if name == "name" and "unit" in columns:
        return "Unit"
    if name in COLUMNS:
        return COLUMNS[name][0]
    if name in MEASURE_LABELS:
        return MEASURE_LABELS[name]
    for suffix, words in SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in MEASURE_LABELS:
            return MEASURE_LABELS[base].split(" (")[0] + words
    return name.replace("_", " ").capitalize()


def _measure_of(columns: list[str]) -> str | None:
    return next((c for c in columns if c in MEASURE_DECIMALS), None)


def _decimals(name: str, columns: list[str]) -> int | None:
    spec = COLUMNS.get(name)
    if spec is not None and spec[1] == ROW:
        return None  # mixed measures and no per-row decimals given: leave them exact
    if spec is not None and spec[1] is not None:
        if spec[1] == SAME:
            measure = _measure_of(columns)
            return MEASURE_DECIMALS[measure] if measure else 1
        return spec[1]
    if spec is not None:
        return None
    if name in MEASURE_DECIMALS:
        return MEASURE_DECIMALS[name]
    for suffix, _ in SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and base in MEASURE_DECIMALS:
            return 0 if suffix == "_n" else MEASURE_DECIMALS[base]
    return 2  # an unknown measure: two places lose nothing the screen shows


def neutralise(value: object) -> object:
    """A text cell made safe to open in a spreadsheet: one starting with = + - @ TAB or CR
    gets a leading apostrophe (OWASP CSV injection), except a plain signed number."""
    if isinstance(value, str) and value.startswith(FORMULA_START) \
            and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _numeric(series: pd.Series) -> bool:
    """Float column, or an object column holding only numbers and blanks."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return False
    if pd.api.types.is_float_dtype(series.dtype):
        return True
    if series.dtype != object:
        return False
    values = series.dropna()
    return not values.empty and values.map(
        lambda v: isinstance(v, (float, int, np.number)) and not isinstance(v, bool)).all() \
        and values.map(lambda v: isinstance(v, (float, np.floating))).any()


def file_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as a file holds them: internal columns dropped, numbers rounded to the
    precision shown, text neutralised against formulas, human column names.

    A builder whose column mixes measures (the KPI table) sets
    `frame.attrs["row_decimals"]`: the decimals of each row.
    """
    columns = [c for c in frame.columns if c not in INTERNAL]
    out = frame[columns].copy()
    row_decimals = frame.attrs.get("row_decimals")
    for col in columns:
        series = out[col]
        spec = COLUMNS.get(col, ("", None, ""))[1]
        if _numeric(series):
            if spec in (ROW, SAME) and row_decimals is not None:
                out[col] = [None if v is None or pd.isna(v) else round(float(v), int(d))
                            for v, d in zip(series, row_decimals, strict=True)]
                continue
            places = _decimals(col, columns)
            if places is not None:
                numeric = pd.to_numeric(series, errors="coerce")
                out[col] = numeric.round(places)
                if places == 0 and numeric.dropna().map(float.is_integer).all():
                    out[col] = numeric.round(0).astype("Int64")
        elif series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
            out[col] = series.map(neutralise).astype(object)
    out.columns = [column_label(c, columns) for c in columns]
    return out


def file_name(target: str, state: dict[str, str], fmt: str) -> str:
    """'segments-table-2026-10-R-WEST-by-channel-metric-csat.xlsx': the target, the filter
    values in the filter bar's order, then the page options that change the rows."""
    from dashboard.state import FILTER_KEYS

    parts = [target, *[state[k] for k in FILTER_KEYS if state.get(k)]]
    parts += [f"{k}-{state[k]}" for k in NAME_KEYS if state.get(k)]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(str(p) for p in parts)).strip("_")
    return f"{stem[:150]}.{fmt}"


def about_rows(target: str, frame: pd.DataFrame, state: dict[str, str]) -> list[list[str]]:
    """The XLSX notes sheet: what view the data is, its period, filters, page options,
    each column's definition and how fresh the data is."""
    from dashboard import context
    from dashboard.data import cached, resolve_period
    from queries.health import freshness, source_titles
    from queries.kpis import org_units

    rows: list[list[str]] = [["CX dashboard download", target],
                             ["Generated", f"{dt.datetime.now():%Y-%m-%d %H:%M}"]]
    try:
        period, compare = resolve_period(state)
    except Exception:  # a page without survey data (health) still gets its notes
        period, compare = None, None
    rows.append(["Period", period.label if period else "no data"])
    rows.append(["Compared with", compare.label if compare else ""])
    units = {str(u["id"]): str(u["name"]) for u in cached(org_units)}
    unit = state.get("unit")
    rows.append(["Unit", f"{units.get(unit, unit)} ({unit})" if unit else "Whole company"])
    for key in ("segment", "channel", "device", "interaction", "touchpoint"):
        value = state.get(key)
        rows.append([FILTER_LABELS[key], value.replace("_", " ").capitalize() if value
                     else "All"])
    for key, label in OPTION_LABELS.items():
        if state.get(key):
            rows.append([label, str(state[key])])
    rows.append(["", ""])
    rows.append(["Column", "Definition"])
    columns = [c for c in frame.columns if c not in INTERNAL]
    for col in columns:
        rows.append([column_label(col, columns), COLUMNS.get(col, ("", None, ""))[2]])
    rows.append(["", ""])
    rows.append(["Data freshness", "last successful load"])
    titles = source_titles(context.settings().cx_sources)
    for f in cached(freshness, stale_hours=context.settings().cx_stale_hours):
        when = f"{f.last_success:%Y-%m-%d %H:%M}" if f.last_success else "never"
        flag = " (stale)" if f.stale else ""
        rows.append([f"{titles.get(f.source, f.source)} ({f.source})", when + flag])
    return rows


def _xlsx(data: pd.DataFrame, about: list[list[str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "data"
    sheet.append(list(data.columns))
    for record in data.itertuples(index=False):
        sheet.append([_cell(v) for v in record])
    notes = book.create_sheet("about")
    for row in about:
        notes.append(row)
    for ws in (sheet, notes):
        for cell in ws[1]:
            cell.font = Font(bold=True)
        # openpyxl turns any text starting with '=' into a formula: text stays text.
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str):
                    cell.data_type = "s"
        for column in ws.columns:
            width = max((len(str(c.value)) for c in column if c.value is not None), default=8)
            ws.column_dimensions[column[0].column_letter].width = min(60, max(8, width + 2))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _cell(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def download_file(target: str, frame: pd.DataFrame, state: dict[str, str], fmt: str) -> dict:
    """The `dcc.Download` payload of `frame` (the rows of download `target` in view
    `state`) as CSV or XLSX: named, rounded, neutralised, with notes in XLSX."""
    from dash import dcc

    data = file_frame(frame)
    name = file_name(target, state, fmt)
    if fmt == "xlsx":
        return dcc.send_bytes(_xlsx(data, about_rows(target, frame, state)), name)
    return dcc.send_data_frame(data.to_csv, name, index=False)
