"""The reporting model as the ETL sees it: for each entity, its fields and their rules.

A source's config maps its own column names onto these field names; validation checks each
value against the rule here; the loader writes the result into the table named here. Adding
a field means adding it here and in `queries/schema.py` (and a migration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Table

from queries import schema

FieldType = Literal["str", "text", "int", "float", "date", "datetime", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of an entity: its type, whether it is required, and its allowed values."""

    type: FieldType = "str"
    required: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    org_ref: bool = False
    default: object | None = None


@dataclass(frozen=True)
class Entity:
    """A target of loading: a table, its natural key and the fields a source may fill."""

    name: str
    kind: str
    table: Table
    key: tuple[str, ...]
    fields: dict[str, FieldSpec]
    # Extra 1-5 rated columns declared per source (survey attributes, engagement items).
    ratings: Literal["attributes", "items"] | None = None
    rating_range: tuple[int, int] = (1, 5)
    # The scores of a row; a row with none of them loads (its comment counts) but enters
    # no metric.
    any_of: tuple[str, ...] = ()
    per_source_key: bool = True
    extra: dict[str, str] = field(default_factory=dict)


ENTITIES: dict[str, Entity] = {
    "org_units": Entity(
        name="org_units",
        kind="org",
        table=schema.org_unit,
        key=("id",),
        per_source_key=False,
        fields={
            "id": FieldSpec(required=True),
            "name": FieldSpec(required=True),
            "kind": FieldSpec(required=True, choices=schema.ORG_KINDS),
            "parent_id": FieldSpec(),
        },
    ),
    "customers": Entity(
        name="customers",
        kind="loyalty",
        table=schema.customer,
        key=("id",),
        per_source_key=False,
        fields={
            "id": FieldSpec(required=True),
            "segment": FieldSpec(),
            "tier": FieldSpec(),
            "loyalty_member": FieldSpec(type="bool", default=True),
            "enrolled_at": FieldSpec(type="date"),
            "home_org_unit_id": FieldSpec(org_ref=True),
        },
    ),
    "transactions": Entity(
        name="transactions",
        kind="loyalty",
        table=schema.loyalty_transaction,
        key=("txn_id",),
        fields={
            "txn_id": FieldSpec(required=True),
            "customer_id": FieldSpec(),
            "org_unit_id": FieldSpec(required=True, org_ref=True),
            "occurred_at": FieldSpec(type="datetime", required=True),
            "channel": FieldSpec(),
            "amount": FieldSpec(type="float", required=True),
            "points_earned": FieldSpec(type="int", min=0, default=0),
            "points_redeemed": FieldSpec(type="int", min=0, default=0),
        },
    ),
    "survey_responses": Entity(
        name="survey_responses",
        kind="survey",
        table=schema.survey_response,
        key=("response_id",),
        ratings="attributes",
        any_of=("nps", "csat", "ces"),
        fields={
            "response_id": FieldSpec(required=True),
            "submitted_at": FieldSpec(type="datetime", required=True),
            "customer_id": FieldSpec(),
            "org_unit_id": FieldSpec(required=True, org_ref=True),
            "survey_kind": FieldSpec(choices=schema.SURVEY_KINDS, default="transactional"),
            "touchpoint": FieldSpec(),
            "channel": FieldSpec(),
            "device": FieldSpec(),
            "interaction": FieldSpec(choices=schema.INTERACTIONS),
            "nps": FieldSpec(type="int", min=0, max=10),
            "csat": FieldSpec(type="int", min=1, max=5),
            "ces": FieldSpec(type="int", min=1, max=7),
            "wait_minutes": FieldSpec(type="float", min=0),
            # Receipts net of returns can be negative: a refund is data, not an error.
            "spend": FieldSpec(type="float"),
            # How often the customer says they visit (the survey's own period, e.g. a year).
            "visits": FieldSpec(type="float", min=0),
            "comment": FieldSpec(type="text"),
        },
    ),
    "engagement_responses": Entity(
        name="engagement_responses",
        kind="engagement",
        table=schema.engagement_response,
        key=("respondent_key", "wave"),
        ratings="items",
        fields={
            "respondent": FieldSpec(required=True),
            "wave": FieldSpec(type="date", required=True),
            "org_unit_id": FieldSpec(required=True, org_ref=True),
            "enps": FieldSpec(type="int", min=0, max=10),
            "comment": FieldSpec(type="text"),
        },
    ),
    "headcount": Entity(
        name="headcount",
        kind="engagement",
        table=schema.headcount,
        key=("org_unit_id", "wave"),
        per_source_key=False,
        fields={
            "org_unit_id": FieldSpec(required=True, org_ref=True),
            "wave": FieldSpec(type="date", required=True),
            "headcount": FieldSpec(type="int", required=True, min=0),
        },
    ),
}

DEFAULT_ENTITY = {
    "org": "org_units",
    "survey": "survey_responses",
    "loyalty": "transactions",
    "engagement": "engagement_responses",
}

# Load order: what others reference comes first.
ENTITY_ORDER = (
    "org_units",
    "customers",
    "transactions",
    "survey_responses",
    "engagement_responses",
    "headcount",
)
