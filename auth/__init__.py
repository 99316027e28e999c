"""People and their access: users, roles, scopes, passwords, sessions and the audit log.

Read and written by the web process (sign-in, the Users page), the `python -m dashboard
users` command and the report sender (a subscription is rendered in its user's scope). It
uses `queries/` for the schema and scopes and knows nothing of Dash; the Flask side of
sign-in lives in `auth.web`.
"""
