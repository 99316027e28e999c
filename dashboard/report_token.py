"""The report page's token, re-exported from `reports.token` (where it is made and read)."""

from reports.token import MAX_AGE_SECONDS, ReportRequest, TokenError, make_token, read_token

__all__ = ["MAX_AGE_SECONDS", "ReportRequest", "TokenError", "make_token", "read_token"]
