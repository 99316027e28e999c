"""Monthly PDF reports: subscriptions (which belong to users), report tokens, the bounded
Chromium renderer, the email, SMTP, and the claims that send each report once.

Used by the scheduler (`etl.scheduler`) and by the dashboard (the Subscriptions page, the
overview's Download PDF, `python -m dashboard subscriptions|send-monthly|deliveries|
snapshot`). It reads through `queries/`, knows people through `auth/`, and reaches the web
app only through its report URL: it imports neither `dashboard/` nor `etl/`.
"""
