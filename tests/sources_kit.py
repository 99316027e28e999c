"""The source files and config that many ETL tests share: one org hierarchy, one survey."""

ORG_CSV = "Code,Name,Level,Parent\nACME,Acme,Company,\nR1,North,Region,ACME\n" \
          "S01,Leeds,Store,R1\nS02,York,Store,R1\n"

ORG_SOURCE = """\
[[source]]
name = "org"
kind = "org"
adapter = "csv"
location = "org.csv"
[source.columns]
id = "Code"
name = "Name"
kind = "Level"
parent_id = "Parent"
[source.values.kind]
Company = "company"
Region = "region"
Store = "store"
"""

SURVEY_BODY = """\
[source.columns]
response_id = "Response ID"
submitted_at = "Submitted"
org_unit_id = "Store"
nps = "NPS"
csat = "CSAT"
ces = "CES"
interaction = "Interaction"
comment = "Comment"
[source.values.interaction]
"Self-service" = "self_service"
"Assisted" = "assisted"
"""
