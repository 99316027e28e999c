"""Read functions about report subscriptions and their deliveries (the monthly PDF emails).

The writing side (adding subscriptions, claiming and sending deliveries) is `reports/`;
these are what the CLI, the admin page and the data-health page show.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, Select, select

from queries import schema

sub = schema.subscription
dlv = schema.delivery

SUBSCRIPTION_COLUMNS = ("id", "email", "name", "scope", "paper", "landscape", "schedule",
                        "active", "created_at", "user_id")
usr = schema.app_user


def _frame(conn: Connection, stmt: Select) -> pd.DataFrame:
    return pd.DataFrame(conn.execute(stmt).mappings().all(),
                        columns=list(stmt.selected_columns.keys()))


def subscriptions(conn: Connection, *, active_only: bool = False) -> pd.DataFrame:
    """Every subscription (recipient, scope as 'A,B' or None for the user's whole scope,
    paper, orientation, schedule, its user's id and email), by id."""
    stmt = (select(*[sub.c[c] for c in SUBSCRIPTION_COLUMNS], usr.c.email.label("user_email"))
            .select_from(sub.outerjoin(usr, usr.c.id == sub.c.user_id)).order_by(sub.c.id))
    if active_only:
        stmt = stmt.where(sub.c.active.is_(True))
    return _frame(conn, stmt)


def deliveries(conn: Connection, *, period: str | None = None, limit: int = 100,
               subscription_id: int | None = None) -> pd.DataFrame:
    """The latest deliveries (of one period 'YYYY-MM', or one subscription), newest first:
    recipient, scope, status, attempts, error, when claimed and sent, whether the data was
    stale when it went out."""
    stmt = (
        select(dlv.c.id, dlv.c.subscription_id, dlv.c.period, sub.c.email.label("recipient"),
               sub.c.name, sub.c.scope, dlv.c.status, dlv.c.attempts, dlv.c.error,
               dlv.c.claimed_by, dlv.c.claimed_at, dlv.c.sent_at, dlv.c.message_id,
               dlv.c.stale_data)
        .join(sub, sub.c.id == dlv.c.subscription_id)
        .order_by(dlv.c.id.desc())
        .limit(limit)
    )
    if period is not None:
        stmt = stmt.where(dlv.c.period == str(period))
    if subscription_id is not None:
        stmt = stmt.where(dlv.c.subscription_id == subscription_id)
    return _frame(conn, stmt)
