"""The scheduler process: APScheduler 3 runs each source on its cron, in its own process.

Never started inside gunicorn workers: each worker would run every job once more. Jobs
coalesce (a backlog of missed runs becomes one run), tolerate a misfire grace time, and run
one instance at a time; across processes the source lock in the database (`etl.run`) keeps a
second scheduler started by mistake from loading the same source concurrently.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import sys
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import Engine

from etl.config import SourceConfig, SourcesConfig
from etl.run import SKIPPED, RunResult, ordered, run_source
from queries.cron import cron_trigger
from queries.db import make_engine
from queries.settings import Settings

log = logging.getLogger(__name__)

MISFIRE_GRACE_SECONDS = 15 * 60


def run_job(engine: Engine, source: SourceConfig) -> RunResult:
    """One scheduled run of `source`; failures are recorded in the run log, never raised.

    A raised exception would only reach APScheduler's log; the run log is what the status
    command and the data-health page read.
    """
    result = run_source(engine, source)
    if result.status == SKIPPED:
        log.warning("%s skipped: %s", source.name, result.error)
    elif result.ok:
        log.info("%s: read %d, loaded %d, updated %d, quarantined %d in %.1f s", source.name,
                 result.read, result.inserted, result.updated, result.quarantined,
                 result.seconds)
    else:
        log.error("%s failed: %s", source.name, result.error)
    return result


def run_all(engine: Engine, sources: list[SourceConfig]) -> None:
    """Run `sources` one after the other in dependency order (the catch-up of --run-now)."""
    for source in ordered(sources):
        run_job(engine, source)


def build_scheduler(settings: Settings, config: SourcesConfig, engine: Engine | None = None,
                    *, run_now: bool = False) -> BlockingScheduler:
    """A BlockingScheduler with one job per scheduled, enabled source.

    With `run_now`, a one-off job runs every scheduled source once at start, in dependency
    order (fired together, a survey job could run before the org units it references).
    """
    tz = ZoneInfo(settings.cx_timezone)
    scheduler = BlockingScheduler(
        timezone=tz,
        job_defaults={
            "coalesce": True,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            "max_instances": 1,
        },
    )
    engine = engine or make_engine(settings.database_url)
    for source in config.sources:
        if not (source.enabled and source.schedule):
            continue
        scheduler.add_job(
            run_job,
            cron_trigger(source.schedule, tz),
            args=(engine, source),
            id=f"source:{source.name}",
            name=f"ETL {source.name}",
            replace_existing=True,
        )
    if run_now:
        scheduled = [s for s in config.sources if s.enabled and s.schedule]
        scheduler.add_job(run_all, "date", run_date=dt.datetime.now(tz), args=(engine, scheduled),
                          id="catch-up", name="ETL catch-up (--run-now)")
    return scheduler


def run_scheduler(settings: Settings, config: SourcesConfig, *, run_now: bool = False) -> int:
    """Start the scheduler and block until interrupted (SIGINT/SIGTERM)."""
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    # SIGTERM (Procfile managers, systemd) becomes a normal exit, so runs release their locks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    engine = make_engine(settings.database_url)
    scheduler = build_scheduler(settings, config, engine, run_now=run_now)
    # The monthly PDF snapshots run in this process too (never in the web workers).
    from reports.delivery import add_snapshot_jobs

    add_snapshot_jobs(scheduler, settings, engine)
    from etl.alerts import add_follow_up_jobs

    add_follow_up_jobs(scheduler, settings, engine)
    jobs = [j for j in scheduler.get_jobs() if j.id != "catch-up"]
    for job in jobs:
        log.info("scheduled %s (%s)", job.name, job.trigger)
    sources = sum(1 for j in jobs if j.id.startswith("source:"))
    log.info("scheduler started with %d source job(s) and %d snapshot job(s)", sources,
             len(jobs) - sources)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")
    return 0
