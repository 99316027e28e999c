"""Real processes: a load killed mid-batch leaves nothing; two runs of one source never
overlap; the scheduler process fires its jobs and records them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from etl.run import acquire_lock, lock_holder, release_lock
from queries import schema
from queries.settings import ROOT

ORG = "Code,Name,Level,Parent\nACME,Acme,Company,\nS01,Leeds,Store,ACME\n"
BIG_ROWS = 150_000


def _write_sources(folder: Path, extra: str = "") -> Path:
    (folder / "org.csv").write_text(ORG)
    path = folder / "sources.toml"
    path.write_text(textwrap.dedent("""
        [[source]]
        name = "org"
        kind = "org"
        adapter = "csv"
        location = "org.csv"
        schedule = "0 5 * * *"
        [source.columns]
        id = "Code"
        name = "Name"
        kind = "Level"
        parent_id = "Parent"
        [source.values.kind]
        Company = "company"
        Store = "store"

        [[source]]
        name = "survey"
        kind = "survey"
        adapter = "csv"
        location = "survey.csv"
        schedule = "*/30 * * * *"
        [source.columns]
        response_id = "id"
        submitted_at = "when"
        org_unit_id = "store"
        nps = "nps"
        csat = "csat"
    """) + textwrap.dedent(extra))
    return path


def _big_survey(folder: Path, rows: int) -> None:
    with (folder / "survey.csv").open("w") as fh:
        fh.write("id,when,store,nps,csat\n")
        for i in range(rows):
            fh.write(f"R{i},2026-0{1 + i % 9}-{1 + i % 28:02d} 10:00,S01,{i % 11},{1 + i % 5}\n")


def _env(engine: Engine, sources: Path, data: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "CX_SOURCES": str(sources), "CX_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}


def _etl(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    proc.kill()
    raise AssertionError(f"{needle!r} never appeared; stderr: {''.join(seen)[-2000:]}")


def _count(engine: Engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_load_killed_mid_batch_leaves_nothing(engine: Engine, tmp_path: Path) -> None:
    sources = _write_sources(tmp_path)
    _big_survey(tmp_path, BIG_ROWS)
    env = _env(engine, sources, tmp_path)
    assert subprocess.run([sys.executable, "-m", "etl", "run", "org"], cwd=ROOT, env=env,
                          capture_output=True).returncode == 0

    proc = _etl(["-v", "run", "survey"], env)
    _wait_for_line(proc, f"survey: writing {BIG_ROWS} rows")
    time.sleep(0.4)  # inside the batch's transaction, rows are being written
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert _count(engine, schema.survey_response) == 0
    assert _count(engine, schema.agg_survey_daily) == 0
    with engine.connect() as conn:
        tracked = conn.execute(select(schema.source_file.c.source)).scalars().all()
    assert tracked == ["org"]  # survey.csv is not marked loaded
    with engine.connect() as conn:
        status = conn.execute(select(schema.etl_run.c.status)
                              .where(schema.etl_run.c.source == "survey")).scalar_one()
    assert status == "running"  # the crashed run is visible as such in the run log
    assert lock_holder(engine, "survey") is not None

    # The rerun takes over the dead process's claim and loads the whole file once.
    done = subprocess.run([sys.executable, "-m", "etl", "run", "survey"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _count(engine, schema.survey_response) == BIG_ROWS
    assert lock_holder(engine, "survey") is None


def test_two_runs_of_one_source_never_overlap(engine: Engine, tmp_path: Path) -> None:
    sources = _write_sources(tmp_path)
    _big_survey(tmp_path, BIG_ROWS)
    env = _env(engine, sources, tmp_path)
    subprocess.run([sys.executable, "-m", "etl", "run", "org"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    first = _etl(["-v", "run", "survey"], env)
    # The first run is held still right after its claim, while it reads the file (before
    # its write transaction, which would keep SQLite busy): however fast loads become, the
    # second process meets a live claim.
    _wait_for_line(first, "survey: run ")
    first.send_signal(signal.SIGSTOP)
    try:
        second = subprocess.run([sys.executable, "-m", "etl", "run", "survey"], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert second.returncode == 0  # skipped: the first run loads it
    assert "skipped" in second.stdout and "running elsewhere" in second.stdout
    assert _count(engine, schema.survey_response) == BIG_ROWS
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(schema.etl_run)
                            .where(schema.etl_run.c.source == "survey")).scalar_one()
    assert runs == 1


def test_lock_claims(engine: Engine) -> None:
    assert acquire_lock(engine, "s", "host-a:1") == "host-a:1"
    assert acquire_lock(engine, "s", "host-b:2") is None
    assert lock_holder(engine, "s") == "host-a:1"
    release_lock(engine, "s", "host-b:2")  # not the holder: nothing happens
    assert lock_holder(engine, "s") == "host-a:1"
    release_lock(engine, "s", "host-a:1")
    assert acquire_lock(engine, "s", "host-b:2") == "host-b:2"


def test_scheduler_process_fires_jobs_and_records_them(engine: Engine, tmp_path: Path) -> None:
    sources = _write_sources(tmp_path, extra="""
        [[source]]
        name = "broken"
        kind = "survey"
        adapter = "csv"
        location = "missing/*.csv"
        schedule = "*/30 * * * *"
        [source.columns]
        response_id = "id"
        submitted_at = "when"
        org_unit_id = "store"
        nps = "nps"
    """)
    _big_survey(tmp_path, 50)
    proc = subprocess.Popen([sys.executable, "-m", "etl", "schedule", "--run-now"], cwd=ROOT,
                            env=_env(engine, sources, tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        run = schema.etl_run
        deadline = time.monotonic() + 60
        finished: dict[str, str] = {}
        while time.monotonic() < deadline and len(finished) < 3:
            with engine.connect() as conn:
                finished = dict(conn.execute(select(run.c.source, run.c.status)
                                             .where(run.c.status != "running")).all())
            time.sleep(0.3)
        assert finished == {"org": "success", "survey": "success", "broken": "failed"}, finished
        with engine.connect() as conn:
            error = conn.execute(select(run.c.error).where(run.c.source == "broken")).scalar_one()
        assert "no files match" in error
        assert _count(engine, schema.survey_response) == 50
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert "scheduler started with 3 source job(s)" in output
    assert _count(engine, schema.etl_lock) == 0


@pytest.mark.parametrize("args", [["status"], ["quarantine"]])
def test_status_and_quarantine_commands(engine: Engine, tmp_path: Path, args) -> None:
    sources = _write_sources(tmp_path)
    (tmp_path / "survey.csv").write_text("id,when,store,nps,csat\nR1,2026-01-05,S01,9,5\n"
                                         "R2,2026-01-06,S01,12,5\nR3,2026-01-07,S99,3,2\n")
    env = _env(engine, sources, tmp_path)
    run = subprocess.run([sys.executable, "-m", "etl", "run"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    # 2 of 3 rows with a problem: above max_quarantine_share, so the run warns and exits 1.
    assert run.returncode == 1, run.stdout + run.stderr
    assert "survey" in run.stdout and "warning" in run.stdout
    out = subprocess.run([sys.executable, "-m", "etl", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if args == ["status"]:
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("survey"))
        # read 3, loaded 2 (R2 without its bad NPS), updated 0; two quarantine records, said
        # in the one quarantine column
        assert line.split()[3:7] == ["warning", "3", "2", "0"] and line.split()[-1] == "2"
        assert line.split()[-1] == "2"
        header = out.stdout.splitlines()[0]
        assert header.count("quar") == 1 and header.split()[-1] == "quarantined"
    else:
        assert ("survey.csv:3 [nps = '12']: out of range (expected 0..10) (value dropped, "
                "row loaded)") in out.stdout
        assert ("survey.csv:4 [column 'store' -> org_unit_id = 'S99']: unknown org unit "
                "'S99'") in out.stdout


def test_a_cron_job_fires_in_the_scheduler_and_is_recorded(engine: Engine, tmp_path: Path) -> None:
    import datetime as dt
    import threading
    from zoneinfo import ZoneInfo

    from etl.config import load_config
    from etl.scheduler import build_scheduler
    from queries.settings import load_settings

    sources = _write_sources(tmp_path)
    settings = load_settings(_env_file=None, cx_timezone="Europe/London")
    scheduler = build_scheduler(settings, load_config(sources), engine)
    job = scheduler.get_job("source:org")
    assert str(job.trigger) == "cron[month='*', day='*', day_of_week='*', hour='5', minute='0']"
    # Due now: the cron trigger's next fire time is moved, APScheduler itself fires the job.
    scheduler.modify_job("source:org", next_run_time=dt.datetime.now(ZoneInfo("Europe/London")))
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status in (None, "running"):
            with engine.connect() as conn:
                status = conn.execute(select(schema.etl_run.c.status)
                                      .where(schema.etl_run.c.source == "org")).scalar()
            time.sleep(0.2)
        job = scheduler.get_job("source:org")
        assert job.coalesce and job.misfire_grace_time == 15 * 60 and job.max_instances == 1
        # Fired once, the job is back on its cron: the next run is at 05:00.
        assert (job.next_run_time.hour, job.next_run_time.minute) == (5, 0)
    finally:
        scheduler.shutdown(wait=True)
    assert status == "success"
    assert _count(engine, schema.org_unit) == 2
