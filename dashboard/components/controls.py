"""Page controls shared by every page."""

from __future__ import annotations

import dash_bootstrap_components as dbc


def toggle(id_: str, options: list[dict] | dict[str, str], value: str | None) -> dbc.RadioItems:
    """Options as one row of joined toggle buttons (`options`: dash options, or value->label)."""
    if isinstance(options, dict):
        options = [{"label": label, "value": v} for v, label in options.items()]
    return dbc.RadioItems(
        id=id_, options=options, value=value,
        class_name="btn-group btn-group-sm flex-wrap", input_class_name="btn-check",
        label_class_name="btn btn-sm btn-outline-secondary",
        label_checked_class_name="active",
    )
