"""The reporting schema (SQLAlchemy Core): a small star around the org-unit hierarchy.

Facts keep their source's natural key, unique per source, so every load is an upsert and a
rerun changes nothing. Child tables (attribute ratings, engagement items) hang off a
surrogate id so queries join on integers. Alembic migrations in `migrations/` create this;
a test checks that the migrated database and this module agree.

Times are naive local times of the company (CX_TIMEZONE): a month is a calendar month there.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Stable constraint names: Alembic can then drop and alter them on every backend.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ORG_KINDS = ("company", "region", "store", "team")
SURVEY_KINDS = ("relationship", "transactional")
INTERACTIONS = ("self_service", "assisted")
ETL_STATUSES = ("running", "success", "warning", "failed")

Money = Numeric(14, 2, asdecimal=False)

org_unit = Table(
    "org_unit",
    metadata,
    Column("id", String(64), primary_key=True, comment="Code from the source, e.g. S01"),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("parent_id", String(64), ForeignKey("org_unit.id"), nullable=True, index=True),
    Column("source", String(64), nullable=False),
    Column("loaded_at", DateTime, nullable=False),
    CheckConstraint("kind IN ('company', 'region', 'store', 'team')", name="kind"),
)

customer = Table(
    "customer",
    metadata,
    Column("id", String(64), primary_key=True, comment="Member or customer number"),
    Column("segment", String(64)),
    Column("tier", String(32)),
    Column("loyalty_member", Boolean, nullable=False, default=True),
    Column("enrolled_at", Date),
    Column("home_org_unit_id", String(64), ForeignKey("org_unit.id"), index=True),
    Column("source", String(64), nullable=False),
    Column("loaded_at", DateTime, nullable=False),
)

survey_response = Table(
    "survey_response",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("response_id", String(128), nullable=False),
    Column("submitted_at", DateTime, nullable=False),
    # A soft link: surveys may arrive before the loyalty programme knows the customer.
    Column("customer_id", String(64), index=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False),
    Column("survey_kind", String(16), nullable=False, default="transactional"),
    Column("touchpoint", String(64)),
    Column("channel", String(32)),
    Column("device", String(32)),
    Column("interaction", String(16)),
    Column("nps", SmallInteger),
    Column("csat", SmallInteger),
    Column("ces", SmallInteger),
    Column("wait_minutes", Float),
    Column("spend", Money, comment="Amount on the receipt the survey was about, if known"),
    Column("visits", Float, comment="Visits the customer says they make (per year, as asked)"),
    Column("comment", Text),
    # The scale each score was asked on, as the source declared it (NULL: the default,
    # CSAT 1-5 favourable >= 4, CES 1-7 favourable >= 5). Rollups count top-box answers by
    # each answer's own rule and rescale means linearly onto the default scale.
    Column("csat_min", SmallInteger),
    Column("csat_max", SmallInteger),
    Column("csat_top", SmallInteger, comment="Lowest favourable CSAT answer"),
    Column("ces_min", SmallInteger),
    Column("ces_max", SmallInteger),
    Column("ces_top", SmallInteger, comment="Lowest 'easy' CES answer"),
    Column("loaded_at", DateTime, nullable=False),
    UniqueConstraint("source", "response_id"),
    CheckConstraint("nps BETWEEN 0 AND 10", name="nps_range"),
    CheckConstraint("csat BETWEEN 0 AND 10", name="csat_range"),
    CheckConstraint("ces BETWEEN 0 AND 10", name="ces_range"),
    CheckConstraint("survey_kind IN ('relationship', 'transactional')", name="survey_kind"),
    CheckConstraint(
        "interaction IS NULL OR interaction IN ('self_service', 'assisted')", name="interaction"
    ),
)
Index("ix_survey_response_submitted_unit", survey_response.c.submitted_at,
      survey_response.c.org_unit_id)

survey_rating = Table(
    "survey_rating",
    metadata,
    Column(
        "response_pk",
        Integer,
        ForeignKey("survey_response.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("attribute", String(64), primary_key=True),
    Column("rating", SmallInteger, nullable=False),
    Column("scale_min", SmallInteger, comment="NULL: the default 1-5 scale"),
    Column("scale_max", SmallInteger),
    Column("favourable", SmallInteger, comment="Lowest favourable rating (NULL: 4)"),
    CheckConstraint("rating BETWEEN 0 AND 10", name="rating_range"),
)

loyalty_transaction = Table(
    "loyalty_transaction",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("txn_id", String(64), nullable=False),
    # Looked up by customer through ix_loyalty_transaction_customer_occurred below.
    # No foreign keys on the largest fact table: PostgreSQL checks one per row and key, and
    # locks the customer row it found, which was 44% of the time to insert a batch. The ETL
    # checks every reference of a batch against the customers and org units, set-based,
    # before writing it (an unknown one is quarantined), and nothing deletes customers or
    # units.
    Column("customer_id", String(64)),
    Column("org_unit_id", String(64), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("channel", String(32)),
    Column("amount", Money, nullable=False),
    Column("points_earned", Integer, nullable=False, default=0),
    Column("points_redeemed", Integer, nullable=False, default=0),
    Column("loaded_at", DateTime, nullable=False),
    UniqueConstraint("source", "txn_id"),
)
Index("ix_loyalty_transaction_occurred_unit", loyalty_transaction.c.occurred_at,
      loyalty_transaction.c.org_unit_id)
# Revenue after a survey answer: a customer's purchases in a date window.
Index("ix_loyalty_transaction_customer_occurred", loyalty_transaction.c.customer_id,
      loyalty_transaction.c.occurred_at)

engagement_response = Table(
    "engagement_response",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("respondent_key", String(64), nullable=False, comment="Salted hash, never the id"),
    Column("wave", Date, nullable=False),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False, index=True),
    Column("enps", SmallInteger),
    Column("comment", Text),
    Column("loaded_at", DateTime, nullable=False),
    UniqueConstraint("source", "respondent_key", "wave"),
    CheckConstraint("enps BETWEEN 0 AND 10", name="enps_range"),
)

engagement_score = Table(
    "engagement_score",
    metadata,
    Column(
        "response_pk",
        Integer,
        ForeignKey("engagement_response.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("item", String(64), primary_key=True),
    Column("score", SmallInteger, nullable=False),
    Column("scale_min", SmallInteger, comment="NULL: the default 1-5 scale"),
    Column("scale_max", SmallInteger),
    Column("favourable", SmallInteger, comment="Lowest favourable score (NULL: 4)"),
    CheckConstraint("score BETWEEN 0 AND 10", name="score_range"),
)

headcount = Table(
    "headcount",
    metadata,
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    Column("wave", Date, primary_key=True),
    Column("headcount", Integer, nullable=False),
    Column("source", String(64), nullable=False),
    Column("loaded_at", DateTime, nullable=False),
    CheckConstraint("headcount >= 0", name="headcount_positive"),
)

etl_run = Table(
    "etl_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False, index=True),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String(16), nullable=False),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("rows_inserted", Integer, nullable=False, default=0),
    Column("rows_updated", Integer, nullable=False, default=0),
    Column("rows_quarantined", Integer, nullable=False, default=0),
    Column("rows_skipped", Integer, nullable=False, default=0,
           comment="rows_excluded + rows_unchanged"),
    Column("rows_excluded", Integer, nullable=False, default=0, server_default="0",
           comment="Not answers: previews, tests, spam, unfinished (see notes)"),
    Column("rows_unchanged", Integer, nullable=False, default=0, server_default="0"),
    Column("watermark", String(64)),
    Column("error", Text),
    Column("notes", Text, comment="JSON: excluded rows by reason, files skipped, units created"),
    # abandoned: the run's process died; marked when the next run takes over its claim.
    # warning: loaded, but more rows were quarantined than the source allows.
    CheckConstraint("status IN ('running', 'success', 'warning', 'failed', 'abandoned')",
                    name="status"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("etl_run.id", ondelete="CASCADE"), index=True),
    Column("source", String(64), nullable=False, index=True),
    Column("file", Text),
    Column("line", Integer, comment="Line (file) or row number (table) in the source"),
    Column("field", String(128)),
    Column("column", Text, comment="The source's own column name of the field"),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Column("raw", Text, comment="The whole source row as JSON (respondent ids hashed)"),
    Column("row_key", String(128),
           comment="Natural key, or hash of the row's content: one record set per bad row"),
    Column("created_at", DateTime, nullable=False),
)
Index("ix_quarantine_source_row_key", quarantine.c.source, quarantine.c.row_key)

source_file = Table(
    "source_file",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("run_id", Integer, ForeignKey("etl_run.id")),
    Column("loaded_at", DateTime, nullable=False),
    Column("mtime_ns", BigInteger,
           comment="Modification time when last seen; same size and time: not re-read"),
)

source_state = Table(
    "source_state",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("watermark", String(64), comment="Highest watermark value loaded, as text"),
    Column("updated_at", DateTime, nullable=False),
)

etl_lock = Table(
    "etl_lock",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("holder", String(200), nullable=False, comment="host:pid of the process running it"),
    Column("acquired_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# Rollups: counts and sums (never ratios), refreshed for the months a load touched, so every
# metric re-aggregates exactly over any set of days, units, segments or channels.
# Dimension columns hold NULL where the fact had none.
agg_survey_daily = Table(
    "agg_survey_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("month", String(7), nullable=False),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False),
    Column("segment", String(64)),
    Column("survey_kind", String(16)),
    Column("touchpoint", String(64)),
    Column("channel", String(32)),
    Column("device", String(32)),
    Column("interaction", String(16)),
    Column("responses", Integer, nullable=False),
    Column("nps_n", Integer, nullable=False),
    Column("nps_promoters", Integer, nullable=False),
    Column("nps_detractors", Integer, nullable=False),
    Column("csat_n", Integer, nullable=False),
    Column("csat_top2", Integer, nullable=False),
    Column("csat_sum", Float, nullable=False, comment="Rescaled onto 1-5"),
    Column("ces_n", Integer, nullable=False),
    Column("ces_sum", Float, nullable=False, comment="Rescaled onto 1-7"),
    Column("ces_sumsq", Float, nullable=False),
    Column("ces_agree", Integer, nullable=False),
    Column("spend_n", Integer, nullable=False),
    Column("spend_sum", Float, nullable=False),
)
Index("ix_agg_survey_daily_month_unit", agg_survey_daily.c.month, agg_survey_daily.c.org_unit_id)

agg_txn_daily = Table(
    "agg_txn_daily",
    metadata,
    Column("day", Date, nullable=False),
    Column("month", String(7), nullable=False),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False),
    Column("segment", String(64)),
    Column("channel", String(32)),
    Column("member", Boolean, nullable=False),
    Column("txns", Integer, nullable=False),
    Column("revenue", Float, nullable=False),
    Column("revenue_sumsq", Float, nullable=False),
    Column("points_earned", Integer, nullable=False),
    Column("points_redeemed", Integer, nullable=False),
)
Index("ix_agg_txn_daily_month_unit", agg_txn_daily.c.month, agg_txn_daily.c.org_unit_id)

# The same sums per unit and month without the dimensions: what a view filtered only by
# unit reads (a unit's KPIs, its 13-month trend, its children side by side). At the large
# scale (220 stores, five years) the daily tables hold 7-10M rows, where these hold 13k
# and 26k: a 12-month company KPI sums 2,600 rows instead of 1.4M. The ETL rebuilds them
# from the daily tables in the same transaction, month by month.
SURVEY_MEASURES = ("responses", "nps_n", "nps_promoters", "nps_detractors", "csat_n",
                   "csat_top2", "csat_sum", "ces_n", "ces_sum", "ces_sumsq", "ces_agree",
                   "spend_n", "spend_sum")
TXN_MEASURES = ("txns", "revenue", "revenue_sumsq", "points_earned", "points_redeemed")


def _measures(daily: Table, names: tuple[str, ...]) -> list[Column]:
    return [Column(name, daily.c[name].type, nullable=False, comment=daily.c[name].comment)
            for name in names]


agg_survey_monthly = Table(
    "agg_survey_monthly",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    *_measures(agg_survey_daily, SURVEY_MEASURES),
)

agg_txn_monthly = Table(
    "agg_txn_monthly",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    Column("member", Boolean, primary_key=True),
    *_measures(agg_txn_daily, TXN_MEASURES),
)

# Which values each dimension takes in each month ('survey' or 'sales' facts): what the
# filter bar offers, without a DISTINCT over millions of daily rows.
agg_dim_value = Table(
    "agg_dim_value",
    metadata,
    Column("fact", String(8), primary_key=True),
    Column("dim", String(16), primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("value", String(64), primary_key=True),
)

# The key-driver model's sufficient statistics per unit, month and outcome: answers with
# the outcome given are grouped by the set of attributes they rated (`pattern`, names
# joined by '|'), and each group keeps n and the sums and cross-products of the outcome and
# its attributes (`moments`, JSON: "s" the sums, "ss" the upper triangle of the products,
# outcome first, then the pattern's attributes in order). Any selection of whole months and
# units, any coverage threshold, re-aggregates exactly from them: the answers that rated
# every kept attribute are those of the patterns containing them.
agg_driver_moments = Table(
    "agg_driver_moments",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    Column("outcome", String(8), primary_key=True),
    Column("pattern", String(1000), primary_key=True),
    Column("n", Integer, nullable=False),
    Column("moments", Text, nullable=False),
)

# Whether a summary the ETL completes after its batches may lack rows: each batch that can
# leave one missing bumps `version` in its own transaction; a completion that found nothing
# left records the version it started from (and the windows it counted with). A run with
# nothing new then skips the completion's scan of millions of answers.
summary_state = Table(
    "summary_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("done_version", Integer),
    Column("params", String(64)),
    Column("updated_at", DateTime),
)

# Active members are distinct people: they cannot be summed over units, months or filters,
# so the ETL counts them for every unit's subtree ('*': the whole company), segment and
# channel ('': any), at the end of each month. `org_tree` fingerprints the unit tree the
# counts were made on: a reader finding another tree counts from the facts instead.
agg_member_activity = Table(
    "agg_member_activity",
    metadata,
    Column("month", String(7), primary_key=True, comment="Counted as of the end of this month"),
    Column("window_days", SmallInteger, primary_key=True),
    Column("scope_unit", String(64), primary_key=True, comment="'*': every unit"),
    Column("segment", String(64), primary_key=True, comment="'': any segment"),
    Column("channel", String(32), primary_key=True, comment="'': any channel"),
    Column("active", Integer, nullable=False),
    Column("active_before", Integer, nullable=False,
           comment="Active as of the end of the month before"),
    Column("retained", Integer, nullable=False, comment="Active at both ends"),
    Column("earning", Integer, nullable=False,
           comment="Members who earned points during the month"),
    Column("org_tree", String(40), nullable=False),
)

# Each NPS answer by a known customer, with that customer's purchases after it: revenue and
# purchases in the `window_days` after the answer (CX_REVENUE_DAYS) and whether any came in
# the `churn_days` (CX_ACTIVE_DAYS). Kept by the ETL (a sale or an answer loaded deletes the
# rows it changes; the end of the run counts them again), so the revenue page sums a column
# instead of joining every answer to the sales. Readers use it only when it holds a row for
# every answer they count, with their windows; otherwise they join the sales themselves.
answer_revenue = Table(
    "answer_revenue",
    metadata,
    Column("response_pk", Integer, ForeignKey("survey_response.id", ondelete="CASCADE"),
           primary_key=True),
    Column("window_days", SmallInteger, nullable=False),
    Column("churn_days", SmallInteger, nullable=False),
    Column("revenue", Money, nullable=False, comment="Purchases in the window_days after"),
    Column("purchases", Integer, nullable=False, comment="Their number"),
    Column("active", SmallInteger, nullable=False,
           comment="1: a purchase in the churn_days after; 0: churned"),
)

# `answer_revenue` and the answers' own spend and visits summed per month, unit and NPS
# score: the revenue page's whole observed months without a dimension filter read a few
# thousand rows instead of joining every answer of a year. `responses` and `linked` (by a
# customer the loyalty programme knows) hold for every answer; the purchase sums cover the
# `kept` linked answers that had a row counted with `window_days`/`churn_days`. Any batch
# that deletes answer revenue rows deletes its months here; the completion after the run
# rebuilds the months it finds missing. Readers use a month only when its responses match
# `agg_survey_monthly` and, for purchases, when `kept` = `linked` with their windows.
agg_answer_month = Table(
    "agg_answer_month",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    Column("nps", SmallInteger, primary_key=True),
    Column("responses", Integer, nullable=False),
    Column("linked", Integer, nullable=False),
    *[Column(f"{m}_{s}", Integer if s == "n" else Float, nullable=False)
      for m in ("spend", "visits", "value") for s in ("n", "sum", "sumsq")],
    Column("window_days", SmallInteger, nullable=False),
    Column("churn_days", SmallInteger, nullable=False),
    Column("kept", Integer, nullable=False),
    Column("churned", Integer, nullable=False),
    *[Column(f"{m}_{s}", Integer if s == "n" else Float, nullable=False)
      for m in ("revenue", "purchases", "ticket") for s in ("n", "sum", "sumsq")],
)

agg_engagement = Table(
    "agg_engagement",
    metadata,
    Column("wave", Date, nullable=False),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False),
    Column("item", String(64), nullable=False),
    Column("n", Integer, nullable=False),
    Column("favourable", Integer, nullable=False),
    Column("score_sum", Float, nullable=False, comment="Rescaled onto 1-5"),
    Column("score_sumsq", Float, nullable=False),
)
Index("ix_agg_engagement_wave_unit", agg_engagement.c.wave, agg_engagement.c.org_unit_id)

agg_engagement_unit = Table(
    "agg_engagement_unit",
    metadata,
    Column("wave", Date, nullable=False),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False),
    Column("respondents", Integer, nullable=False),
    Column("enps_n", Integer, nullable=False),
    Column("enps_promoters", Integer, nullable=False),
    Column("enps_detractors", Integer, nullable=False),
)
Index("ix_agg_engagement_unit_wave_unit", agg_engagement_unit.c.wave,
      agg_engagement_unit.c.org_unit_id)

subscription = Table(
    "subscription",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, comment="Recipient address"),
    Column("name", String(200)),
    Column("scope", String(500),
           comment="Org unit ids, comma-separated; NULL: the user's whole current scope"),
    # Whose scope the PDF is rendered in, at send time. NULL only for subscriptions made
    # before users existed that no user's email matched: those are refused when sent.
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), index=True),
    Column("paper", String(10), nullable=False, default="A4"),
    Column("landscape", Boolean, nullable=False, default=True),
    Column("schedule", String(64), nullable=False, default="0 7 1 * *"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("email", "scope"),
    CheckConstraint("paper IN ('A4', 'Letter')", name="paper"),
)

# One row per (subscription, period), claimed before sending: the unique key is what makes
# a rerun, a second scheduler or a restart after a crash unable to send twice.
delivery = Table(
    "delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, ForeignKey("subscription.id", ondelete="CASCADE"),
           nullable=False),
    Column("period", String(7), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(200)),
    Column("claimed_at", DateTime),
    Column("sent_at", DateTime),
    Column("error", Text),
    Column("message_id", String(200)),
    Column("stale_data", Boolean, nullable=False, default=False),
    UniqueConstraint("subscription_id", "period"),
    CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name="status"),
)

FACT_TABLES = (survey_response, loyalty_transaction, engagement_response)

# People who sign in. A manager's scope is a set of org units (each with everything below
# it); executives and admins see every unit, so their scope is NULL.
app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True, comment="Lower-cased"),
    Column("name", String(200)),
    Column("role", String(16), nullable=False),
    Column("scope", String(2000), comment="Org unit ids, comma-separated; NULL: every unit"),
    Column("password_hash", String(255), comment="argon2id; NULL for single sign-on users"),
    Column("auth_source", String(16), nullable=False, default="local"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("last_login_at", DateTime),
    CheckConstraint("role IN ('executive', 'manager', 'admin')", name="role"),
    CheckConstraint("auth_source IN ('local', 'oidc', 'header')", name="auth_source"),
)

# Server-side sessions: the cookie carries a random token, the table its SHA-256, so a
# sign-out or a removed user ends the session everywhere at once.
user_session = Table(
    "user_session",
    metadata,
    Column("id", String(64), primary_key=True, comment="SHA-256 of the cookie's token"),
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("ip", String(64)),
    Column("user_agent", String(300)),
)

# Who did what, kept when the user is removed (no foreign key on purpose).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user_id", Integer),
    Column("actor", String(320), comment="Email of the user, or what acted (scheduler, cli)"),
    Column("action", String(40), nullable=False),
    Column("outcome", String(16), nullable=False, default="ok"),
    Column("target", String(500)),
    Column("detail", Text),
    Column("ip", String(64)),
    Index("ix_audit_log_action_at", "action", "at"),
    CheckConstraint("outcome IN ('ok', 'failed', 'denied')", name="outcome"),
)


# Recipient domains an admin allowed: a subscription may go to an address that is not its
# user's own only when the address's domain is listed here.
allowed_domain = Table(
    "allowed_domain",
    metadata,
    Column("domain", String(253), primary_key=True, comment="Lower-cased, e.g. example.com"),
    Column("added_by", String(320)),
    Column("added_at", DateTime, nullable=False),
)

# Comment analytics, computed by the ETL after each load (etl/comments_nlp.py), never at page
# time. A topic keeps its id across refits (matched on its terms), so an admin's label or
# merge survives; `merged_into` points at the topic it now counts as (one level, flattened).
comment_topic = Table(
    "comment_topic",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("language", String(8), nullable=False),
    Column("terms", String(500), nullable=False, comment="Top terms, comma-separated"),
    Column("weights", Text, nullable=False, comment="JSON {term: weight}, to match refits"),
    Column("label", String(200), comment="An admin's label; NULL: the top terms"),
    Column("merged_into", Integer, ForeignKey("comment_topic.id"), index=True),
    Column("active", Boolean, nullable=False, default=True,
           comment="Part of the language's current topic model"),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

comment_analysis = Table(
    "comment_analysis",
    metadata,
    Column(
        "response_pk",
        Integer,
        ForeignKey("survey_response.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("text_hash", String(64), nullable=False, comment="SHA-256 of the comment analysed"),
    Column("language", String(8)),
    Column("lemmas", Text, comment="Content lemmas, space-separated"),
    Column("topic_id", Integer, ForeignKey("comment_topic.id"), index=True),
    Column("topic_weight", Float),
    Column("sentiment", Float, comment="-1 (negative) to 1 (positive)"),
    Column("sentiment_label", String(8)),
    Column("analysed_at", DateTime, nullable=False),
    CheckConstraint("sentiment_label IN ('negative', 'neutral', 'positive')",
                    name="sentiment_label"),
)

# Comments summed per month, unit and (own) topic, 0 for none yet: the topics chart and the
# comment list's count of a window of whole months without a dimension filter read these
# instead of reading every comment.
# Survey batches rebuild their months; the comment analysis (which assigns topics and
# tones) marks `summary_state` 'topic_month' stale while it writes and rebuilds it after;
# readers use it only when that state is done.
agg_topic_month = Table(
    "agg_topic_month",
    metadata,
    Column("month", String(7), primary_key=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), primary_key=True),
    Column("topic_id", Integer, primary_key=True,
           comment="Own topic (merges apply on read); 0: none"),
    Column("comments", Integer, nullable=False),
    Column("sentiment_n", Integer, nullable=False),
    Column("sentiment_sum", Float, nullable=False),
    Column("negative", Integer, nullable=False),
    Column("toned", Integer, nullable=False),
    Column("nps_n", Integer, nullable=False),
    Column("promoters", Integer, nullable=False),
    Column("detractors", Integer, nullable=False),
)

# The fitted models per language (vocabulary, idf, NMF components or classifier weights as
# JSON), so new comments are scored without refitting.
comment_model = Table(
    "comment_model",
    metadata,
    Column("language", String(8), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("n_docs", Integer, nullable=False),
    Column("fitted_at", DateTime, nullable=False),
    Column("params", Text, nullable=False),
    CheckConstraint("kind IN ('topics', 'sentiment')", name="kind"),
)

# Closing the loop: a detractor answer (or CSAT 1-2) with a customer id or a comment opens one
# follow-up case (unique per answer) for the manager of the answer's store.
CASE_STATUSES = ("open", "contacted", "resolved")
follow_up_case = Table(
    "follow_up_case",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("response_pk", Integer, ForeignKey("survey_response.id", ondelete="CASCADE"),
           nullable=False, unique=True),
    Column("org_unit_id", String(64), ForeignKey("org_unit.id"), nullable=False, index=True),
    Column("reason", String(16), nullable=False),
    Column("owner_id", Integer, ForeignKey("app_user.id", ondelete="SET NULL"), index=True),
    Column("owner_email", String(320), comment="Kept when the user is removed"),
    Column("status", String(16), nullable=False, default="open"),
    Column("note", Text),
    Column("opened_at", DateTime, nullable=False),
    Column("due_at", DateTime, nullable=False),
    Column("closed_at", DateTime),
    Column("updated_at", DateTime, nullable=False),
    Column("updated_by", String(320)),
    Column("notified_at", DateTime, comment="When the owner was emailed about it"),
    CheckConstraint("status IN ('open', 'contacted', 'resolved')", name="status"),
    CheckConstraint("reason IN ('detractor', 'csat_low')", name="reason"),
)
Index("ix_follow_up_case_status_due", follow_up_case.c.status, follow_up_case.c.due_at)

# Emails about cases, claimed before sending like snapshot deliveries: the unique key
# (recipient, key) with key 'case:ID' or 'digest:YYYY-MM-DD' makes a second send impossible.
case_notice = Table(
    "case_notice",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False),
    Column("key", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(200)),
    Column("claimed_at", DateTime),
    Column("sent_at", DateTime),
    Column("cases", Text, comment="Case ids in the email, comma-separated"),
    Column("error", Text),
    Column("message_id", String(200)),
    UniqueConstraint("email", "key"),
    CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name="status"),
)

# KPI alerts belong to a subscription (its email and scope): an email when a KPI changes
# significantly or crosses its target, or when a source goes silent. Each alert event is
# claimed before it is sent (unique per alert and event key), as snapshot deliveries are.
kpi_alert = Table(
    "kpi_alert",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscription_id", Integer, ForeignKey("subscription.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("kpi", String(32), comment="KPI key (nps, csat, ...); NULL: source silence only"),
    Column("on_change", Boolean, nullable=False, default=True),
    Column("on_target", Boolean, nullable=False, default=True),
    Column("silent_days", Integer, comment="Alert when a source has no new answer this long"),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
    CheckConstraint("silent_days IS NULL OR silent_days >= 1", name="silent_days"),
)

alert_event = Table(
    "alert_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("kpi_alert.id", ondelete="CASCADE"),
           nullable=False),
    Column("key", String(120), nullable=False, comment="e.g. nps:change:2026-11"),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_by", String(200)),
    Column("claimed_at", DateTime),
    Column("sent_at", DateTime),
    Column("text", Text),
    Column("error", Text),
    UniqueConstraint("alert_id", "key"),
    CheckConstraint("status IN ('claimed', 'sending', 'sent', 'failed')", name="status"),
)
