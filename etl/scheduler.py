"""The scheduler process: APScheduler runs each source on its cron, in its own process.

Never started inside gunicorn workers: each worker would run every job once more.
"""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from etl.config import SourcesConfig
from etl.run import run_source
from queries.db import make_engine
from queries.settings import Settings

log = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 15 * 60


def build_scheduler(settings: Settings, config: SourcesConfig) -> BlockingScheduler:
    """A BlockingScheduler with one job per scheduled, enabled source."""
    tz = ZoneInfo(settings.cx_timezone)
    scheduler = BlockingScheduler(
        timezone=tz,
        job_defaults={
            # A missed run is run once, late, rather than many times or never.
            "coalesce": True,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            "max_instances": 1,
        },
    )
    engine = make_engine(settings.database_url)
    for source in config.sources:
        if source.enabled and source.schedule:
            scheduler.add_job(
                run_source,
                CronTrigger.from_crontab(source.schedule, timezone=tz),
                args=(engine, source),
                id=f"source:{source.name}",
                name=f"ETL {source.name}",
                replace_existing=True,
            )
    return scheduler


def run_scheduler(settings: Settings, config: SourcesConfig) -> int:
    """Start the scheduler and block until interrupted."""
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(message)s")
    scheduler = build_scheduler(settings, config)
    for job in scheduler.get_jobs():
        log.info("scheduled %s (%s)", job.name, job.trigger)
    log.info("scheduler started with %d job(s)", len(scheduler.get_jobs()))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")
    return 0
