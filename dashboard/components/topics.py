"""What comments are about, drawn: topics by volume coloured by sentiment, the topic table
(NPS with n and margin, change against the comparison window, detractor vs promoter share with
its test), and the one-pager block "what detractors talk about".

Pure builders from a `queries.comment_topics.TopicSummary`; pages fetch it through
`dashboard.data.cached` (so a manager's scope applies) and pass it in.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import html

from dashboard.components import theme
from queries.comment_topics import TopicSummary
from queries.formatting import fmt_nps_estimate, fmt_p

TOP = 12
"""Topics drawn in the chart (the table lists them all)."""


def sentiment_colour(value: float | None) -> str:
    """Vermillion for a negative mean sentiment, green-blue for positive, grey between."""
    if value is None or pd.isna(value):
        return theme.NEUTRAL
    if value < -0.2:
        return theme.DETRACTOR
    if value > 0.2:
        return theme.PROMOTER
    return theme.PASSIVE


def topics_figure(summary: TopicSummary | None, *, where: str, min_n: int = 30) -> go.Figure:
    """Horizontal bars: comments per topic (most first), coloured by mean sentiment; hover
    gives the share, sentiment and the topic's NPS with its margin and n."""
    if summary is None or summary.frame.empty:
        return theme.empty_figure(f"No analysed comments for {where}: topics appear after "
                                  "the next load analyses them.")
    data = summary.frame.head(TOP).iloc[::-1]
    fig = go.Figure(go.Bar(
        x=[int(v) for v in data["comments"]], y=[str(v) for v in data["label"]],
        orientation="h",
        marker={"color": [sentiment_colour(v) for v in data["sentiment"]]},
        customdata=[[f"{s:.0f}%", "–" if pd.isna(m) else f"{m:+.2f}",
                     fmt_nps_estimate(None if pd.isna(v) else float(v),
                                      None if pd.isna(e) else float(e), int(n), min_n)]
                    for s, m, v, e, n in zip(data["share_pct"], data["sentiment"], data["nps"],
                                             data["nps_moe"], data["nps_n"], strict=True)],
        hovertemplate=("<b>%{y}</b><br>%{x:,} comments (%{customdata[0]})<br>"
                       "sentiment %{customdata[1]} (-1 to 1)<br>NPS %{customdata[2]}"
                       "<extra></extra>"),
    ))
    theme.base_layout(fig, title=f"Topics by volume · {summary.comments:,} comments",
                      height=max(260, 60 + 30 * len(data)))
    fig.update_layout(showlegend=False, dragmode=False,
                      margin={"l": 12, "r": 24, "t": 52, "b": 40})
    fig.update_xaxes(title="Comments")
    fig.update_yaxes(automargin=True)
    return fig


def _change(row: pd.Series) -> str:
    if "share_change_pts" not in row or pd.isna(row["share_change_pts"]):
        return "–"
    mark = " *" if row["share_change_significant"] else ""
    return f"{row['share_change_pts']:+.1f} pts{mark}"


def _nps_change(row: pd.Series) -> str:
    if pd.isna(row["nps_change"]):
        return "–"
    return f"{row['nps_change']:+.0f}" + (" *" if row["nps_change_significant"] else "")


def topics_table(summary: TopicSummary | None, *, id_: str, min_n: int = 30,
                 compared: bool = True) -> object:
    """The topic table: volume and share, sentiment, NPS (n, margin), change against the
    comparison window (* significant at 95%), detractor vs promoter share with the test."""
    if summary is None or summary.frame.empty:
        return html.Div("No analysed comments in this selection.", className="text-muted",
                        id=id_)
    head = ["Topic", "Comments", "Sentiment", "NPS (95% margin, n)",
            *(["Share change", "NPS change"] if compared else []),
            "Detractors · promoters mentioning", "Test"]
    body = []
    for _, r in summary.frame.iterrows():
        det = "–" if pd.isna(r["detractor_share_pct"]) else f"{r['detractor_share_pct']:.0f}%"
        pro = "–" if pd.isna(r["promoter_share_pct"]) else f"{r['promoter_share_pct']:.0f}%"
        driver = html.Span(" drives detractors", className="fw-semibold",
                           style={"color": theme.DETRACTOR}) if r["drives_detractors"] else None
        tone = "–" if pd.isna(r["sentiment"]) else f"{r['sentiment']:+.2f}"
        neg = "" if pd.isna(r["negative_pct"]) else f" ({r['negative_pct']:.0f}% negative)"
        cells = [
            html.Td(r["label"]),
            html.Td(f"{int(r['comments']):,} ({r['share_pct']:.0f}%)", className="text-end"),
            html.Td(tone + neg,
                    style={"color": sentiment_colour(r["sentiment"])}),
            html.Td(fmt_nps_estimate(None if pd.isna(r["nps"]) else float(r["nps"]),
                                     None if pd.isna(r["nps_moe"]) else float(r["nps_moe"]),
                                     int(r["nps_n"]), min_n)),
        ]
        if compared:
            cells += [html.Td(_change(r)),
                      html.Td(_nps_change(r))]
        cells += [html.Td([f"{det} · {pro}", driver]),
                  html.Td(fmt_p(None if pd.isna(r["detractor_p"]) else float(r["detractor_p"])),
                          className="small text-muted")]
        body.append(html.Tr(cells, **{"data-topic": str(int(r["topic_id"]))}))
    return html.Div(html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
        # Cells wrap: every column stays in view at 1024 px, nothing scrolls sideways.
        className="table table-sm cx-table mb-1 small"), id=id_)


def detractor_topics(summary: TopicSummary | None, *, limit: int = 5,
                     id_: str = "report-detractor-topics") -> html.Div:
    """The one-pager's "What detractors talk about": the topics most mentioned by detractors,
    each with its share of detractor comments against promoters' and whether the difference
    is significant. Self-contained: place it anywhere in a layout."""
    title = html.H3("What detractors talk about", className="h6 mb-1")
    if summary is None or summary.frame.empty or summary.detractor_comments == 0:
        return html.Div([title, html.Div("No analysed detractor comments in this selection.",
                                         className="text-muted small")], id=id_,
                        className="cx-detractor-topics")
    data = (summary.frame[summary.frame["detractor_comments"] > 0]
            .sort_values(["detractor_comments", "topic_id"], ascending=[False, True])
            .head(limit))
    items = []
    for _, r in data.iterrows():
        pro = ("" if pd.isna(r["promoter_share_pct"])
               else f" vs {r['promoter_share_pct']:.0f}% of promoters'")
        flag = " · more than promoters (significant)" if r["drives_detractors"] else ""
        items.append(html.Li([html.B(str(r["label"])),
                              f": {r['detractor_share_pct']:.0f}% of detractors' comments"
                              f"{pro}{flag}"]))
    return html.Div([title, html.Ul(items, className="mb-0 ps-3 small"),
                     html.Div(f"{summary.detractor_comments:,} detractor comments analysed.",
                              className="text-muted small")],
                    id=id_, className="cx-detractor-topics")
