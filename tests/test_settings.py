"""Settings: defaults, environment parsing, and errors that name the variable."""

from __future__ import annotations

import pytest

from queries.settings import ROOT, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "CX_SOURCES", "SECRET_KEY", "CX_BASE_URL", "SMTP_URL",
                 "CX_MIN_N", "CX_TIMEZONE", "CX_DATA_DIR", "CX_ANONYMITY_MIN"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_resolve_relative_to_the_repo() -> None:
    s = load_settings(_env_file=None)
    assert s.database_url == f"sqlite:///{ROOT / 'data' / 'cx.db'}"
    assert s.cx_sources == ROOT / "data" / "demo" / "sources.toml"
    assert s.cx_min_n == 30
    assert s.cx_anonymity_min == 5
    assert s.cx_base_url == "http://127.0.0.1:8050"
    assert s.smtp_url is None


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://me@db.example:5432/cx")
    monkeypatch.setenv("CX_MIN_N", "50")
    monkeypatch.setenv("CX_BASE_URL", "https://cx.example.com/")
    monkeypatch.setenv("SMTP_URL", "smtp://user:pw@mail.example:587?starttls=true")
    s = load_settings(_env_file=None)
    # psycopg 3 is the driver we ship, so plain postgresql:// URLs are pointed at it.
    assert s.database_url == "postgresql+psycopg://me@db.example:5432/cx"
    assert s.cx_min_n == 50
    assert s.cx_base_url == "https://cx.example.com"
    assert s.smtp_url == "smtp://user:pw@mail.example:587?starttls=true"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "not a url", "DATABASE_URL"),
        ("CX_MIN_N", "many", "CX_MIN_N"),
        ("CX_MIN_N", "0", "CX_MIN_N"),
        ("CX_TIMEZONE", "Mars/Olympus", "CX_TIMEZONE"),
        ("CX_BASE_URL", "ftp://x", "CX_BASE_URL"),
        ("SMTP_URL", "http://mail", "SMTP_URL"),
    ],
)
def test_invalid_values_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings(_env_file=None)
    assert expected in str(err.value)
    assert repr(value) in str(err.value)


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CX_DATA_DIR", str(tmp_path))
    first = load_settings(_env_file=None).secret()
    second = load_settings(_env_file=None).secret()
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    explicit = "explicit-key-of-forty-characters-000000"
    monkeypatch.setenv("SECRET_KEY", explicit)
    assert load_settings(_env_file=None).secret() == explicit


def test_cli_reports_a_bad_setting_and_exits_2(monkeypatch, capsys) -> None:
    from etl.__main__ import main
    from queries.settings import get_settings

    get_settings.cache_clear()
    monkeypatch.setenv("CX_MIN_N", "-3")
    try:
        assert main(["migrate"]) == 2
    finally:
        get_settings.cache_clear()
    assert "CX_MIN_N" in capsys.readouterr().err
