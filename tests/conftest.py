"""Shared fixtures: real SQLite and PostgreSQL databases, demo sources, a served dashboard.

Data tests take the `engine` (empty, migrated) or `demo_engine` (demo data loaded) fixture,
both parametrized over SQLite and, when TEST_DATABASE_URL is set, PostgreSQL. In CI
(CI=true) a missing TEST_DATABASE_URL or Chromium fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from benchmarks.serving import free_port, start_gunicorn, stop_gunicorn
from etl.migrate import upgrade
from queries.db import make_engine
from queries.schema import metadata
from queries.settings import ROOT
from tests.smtp_server import smtp_server  # noqa: F401 - a fixture for every test module

PG_URL = os.environ.get("TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
DEMO_ARGS = {"seed": 11, "customers": 3000, "months": 13, "end": "2026-10"}
ARTIFACTS = ROOT / "test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI=true but TEST_DATABASE_URL is not set: the PostgreSQL "
                                "half of the data tests cannot run (use .ci/run)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests drive the pages: the numbers on them come from queries/, whose tests run
    # on both backends. A browser test runs on PostgreSQL too only when it checks the numbers
    # a page or PDF shows against the CLI (`both_backends`); the rest once, on SQLite, which
    # keeps CI inside its 15 minutes.
    once = [item for item in items
            if item.get_closest_marker("browser") is not None
            and item.get_closest_marker("both_backends") is None
            and getattr(item, "callspec", None) is not None
            and item.callspec.params.get("demo_url") == "postgresql"]
    if once:
        dropped = set(map(id, once))
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=once)


def _pg_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_pg_database(base_url: str) -> str:
    """Create a uniquely named PostgreSQL database next to `base_url`; return its URL."""
    base = make_url(_pg_url(base_url))
    name = f"cx_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(base_url: str, url: str) -> None:
    """Drop a database made by `create_pg_database`."""
    name = make_url(url).database
    admin = create_engine(make_url(_pg_url(base_url)), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def fresh_database_url(tmp_path_factory: pytest.TempPathFactory):
    """Factory: a new empty database URL on `backend` (dropped at the end of the session)."""
    made: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("db") / "cx.db"
            return f"sqlite:///{path}"
        assert PG_URL, "PostgreSQL requested without TEST_DATABASE_URL"
        url = create_pg_database(PG_URL)
        made.append(url)
        return url

    yield make
    for url in made:
        drop_pg_database(PG_URL or "", url)


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "cx.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()
    return path


@pytest.fixture(scope="session")
def _pg_session_engine(fresh_database_url) -> Iterator[Engine]:
    eng = make_engine(fresh_database_url("postgresql"))
    upgrade(eng)
    yield eng
    eng.dispose()


def _truncate_pg(eng: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path, _migrated_template: Path) -> Iterator[
        Engine]:
    """An empty, migrated reporting database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "cx.db"
        shutil.copy(_migrated_template, path)
        eng = make_engine(f"sqlite:///{path}")
        yield eng
        eng.dispose()
    else:
        eng = request.getfixturevalue("_pg_session_engine")
        _truncate_pg(eng)
        yield eng
        _truncate_pg(eng)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo source files (small but statistically useful), generated once per session."""
    from etl.demo import generate

    out = tmp_path_factory.mktemp("demo")
    generate(out, **DEMO_ARGS)
    return out


@pytest.fixture(scope="session", params=BACKENDS)
def demo_url(request: pytest.FixtureRequest, demo_dir: Path, fresh_database_url) -> str:
    """URL of a database with the demo sources loaded once (read-only for tests!)."""
    from etl.config import load_config
    from etl.run import run_sources

    url = fresh_database_url(request.param)
    eng = make_engine(url)
    upgrade(eng)
    results = run_sources(eng, load_config(demo_dir / "sources.toml"))
    eng.dispose()
    failed = [r for r in results if not r.ok]
    assert not failed, failed
    return url


@pytest.fixture
def demo_engine(demo_url: str) -> Iterator[Engine]:
    """Engine on the loaded demo database."""
    eng = make_engine(demo_url)
    yield eng
    eng.dispose()


# Where each served dashboard writes its gunicorn log (tests look for leaked secrets there).
SERVED_LOGS: dict[str, Path] = {}

# People who sign in to the served demo: (email, role, scope, password).
TEST_USERS = {
    "admin": ("admin@example.com", "admin", None, "admin-password-1"),
    "executive": ("ceo@example.com", "executive", None, "exec-password-1"),
    "region": ("west@example.com", "manager", "R-WEST", "west-password-1"),
    "store": ("leeds@example.com", "manager", "S01", "leeds-password-1"),
}


def add_test_users(url: str) -> None:
    """Create TEST_USERS in the database at `url` (those missing)."""
    from auth.users import add_user, get_user_by_email

    eng = make_engine(url)
    with eng.begin() as conn:
        for email, role, scope, password in TEST_USERS.values():
            if get_user_by_email(conn, email) is None:
                add_user(conn, email=email, role=role, scope=scope, password=password)
    eng.dispose()


def sign_in(base: str, who: str = "admin"):
    """A requests session signed in as TEST_USERS[who] through the real sign-in form."""
    import re

    import requests

    email, _role, _scope, password = TEST_USERS[who]
    http = requests.Session()
    form = http.get(base + "/login", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = http.post(base + "/login", data={"csrf_token": csrf, "email": email,
                                            "password": password, "next": "/"},
                     allow_redirects=False, timeout=30)
    assert done.status_code == 302, (done.status_code, done.text[:300])
    http.headers["X-CSRFToken"] = ""
    page = http.get(base + "/", timeout=30)  # sets the CSRF cookie
    assert page.status_code == 200
    http.headers["X-CSRFToken"] = http.cookies.get("_csrf_token", "")
    return http


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict, served_demo: str) -> dict:
    """Browser tests start signed in as the demo admin (sign-in itself is tested apart)."""
    http = sign_in(served_demo, "admin")
    cookies = [{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": "/",
                "httpOnly": c.name == "cx_session", "secure": False, "sameSite": "Lax"}
               for c in http.cookies]
    return {**browser_context_args, "storage_state": {"cookies": cookies, "origins": []}}


@pytest.fixture(scope="session")
def served_demo(demo_url: str, demo_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """gunicorn serving the dashboard on the demo database (with TEST_USERS); yields its
    base URL."""
    add_test_users(demo_url)
    port = free_port()
    data_dir = tmp_path_factory.mktemp("webdata")
    env = {
        **os.environ,
        "DATABASE_URL": demo_url,
        "CX_SOURCES": str(demo_dir / "sources.toml"),
        "CX_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret-key-0123456789abcdefghij",
        "CX_BASE_URL": f"http://127.0.0.1:{port}",
    }
    SERVED_LOGS[f"http://127.0.0.1:{port}"] = data_dir / "gunicorn.log"
    proc = start_gunicorn(port, env, data_dir / "gunicorn.log", args=["--workers", "2"])
    yield f"http://127.0.0.1:{port}"
    stop_gunicorn(proc, timeout=10)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """Launch Debian's Chromium (Playwright cannot download its own browser here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make test` (it installs it with "
                    "apt-get) or `sudo apt-get install -y chromium`")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic"],
    }


@pytest.fixture(scope="session")
def dash_app(demo_url: str, tmp_path_factory: pytest.TempPathFactory):
    """The Dash app on the demo database, for calling page callbacks directly."""
    from dashboard.app import create_app
    from queries.settings import load_settings

    settings = load_settings(_env_file=None, database_url=demo_url,
                             cx_data_dir=str(tmp_path_factory.mktemp("appdata")),
                             secret_key="test-secret-key-0123456789abcdefghij")
    return create_app(settings)


@pytest.fixture
def in_app(dash_app):
    """Run a callable inside a request of the demo app: `in_app(fn, *args)`."""

    def call(fn, *args, **kwargs):
        with dash_app.server.test_request_context("/"):
            return fn(*args, **kwargs)

    return call


@pytest.fixture
def page_module(dash_app):
    """The module of a page as Dash loaded it (`page_module("revenue")`).

    Importing `dashboard.pages.x` again would register the page and its callbacks a second
    time under another name, and every app built afterwards would carry duplicates.
    """

    def get(name: str):
        return sys.modules[f"pages.{name}"]

    return get
