"""Crontab lines as APScheduler triggers: moved to `queries.cron` (the scheduler and
`reports/` both use it); re-exported here for existing imports."""

from queries.cron import cron_trigger

__all__ = ["cron_trigger"]
