"""The sources config: a wrong config fails at start naming the source, the key and what
was expected."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from etl.config import ConfigError, load_config

GOOD = """
[[source]]
name = "survey"
kind = "survey"
adapter = "csv"
location = "surveys/*.csv"
schedule = "15 * * * *"
encoding = "cp1252"
delimiter = ";"
date_format = "%d/%m/%Y"
[source.columns]
response_id = "ID"
submitted_at = "Date"
org_unit_id = "Store"
nps = "Recommend"
[source.values.nps]
"Ten" = 10
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "sources.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def test_a_good_config_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    config = _load(tmp_path, GOOD)
    (source,) = config.sources
    assert source.entity_name == "survey_responses"
    assert source.resolve() == tmp_path / "surveys" / "*.csv"
    assert source.values == {"nps": {"Ten": 10}}


def test_the_demo_config_is_valid(demo_dir: Path) -> None:
    names = [s.name for s in load_config(demo_dir / "sources.toml").sources]
    assert names == ["org_units", "loyalty_members", "loyalty_transactions", "customer_survey",
                     "engagement_waves", "headcount"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('kind = "survey"', 'kind = "surveys"'),
         ["source 'survey'", "'kind'", "'org', 'survey', 'loyalty' or 'engagement'"]),
        (('schedule = "15 * * * *"', 'schedule = "every hour"'),
         ["source 'survey'", "'schedule'", "5-field cron"]),
        (('encoding = "cp1252"', 'encoding = "klingon"'),
         ["source 'survey'", "'encoding'", "unknown encoding 'klingon'"]),
        (('delimiter = ";"', 'delimiter = ";;"'),
         ["source 'survey'", "'delimiter'", "single character"]),
        (('response_id = "ID"\n', ''),
         ["source 'survey'", "'columns.response_id'", "required"]),
        (('nps = "Recommend"', 'net_promoter = "Recommend"'),
         ["source 'survey'", "'columns'", "unknown field(s) ['net_promoter']"]),
        (('adapter = "csv"', 'adapter = "ftp"'),
         ["source 'survey'", "'adapter'", "'csv'"]),
        (('location = "surveys/*.csv"', 'location = "surveys/*.csv"\ncolour = "blue"'),
         ["source 'survey'", "'colour'", "not a known key"]),
        (('name = "survey"', 'name = "my survey!"'),
         ["'name'", "should match pattern"]),
        (('adapter = "csv"', 'adapter = "sql"'),
         ["source 'survey'", "'table'", "needs `table` or `query`"]),
    ],
)
def test_wrong_config_names_source_key_and_expectation(tmp_path: Path, change, expected) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, GOOD.replace(old, new, 1))
    message = str(err.value)
    assert str(tmp_path / "sources.toml") in message
    for fragment in expected:
        assert fragment in message, message


def test_duplicate_names_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="source 'survey': key 'name': declared more than once"):
        _load(tmp_path, GOOD + GOOD)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[[source]\nname=")
    with pytest.raises(ConfigError, match=r"no \[\[source\]\] tables"):
        _load(tmp_path, "# empty\n")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace('encoding = "cp1252"', 'encoding = "klingon"').replace(
        'schedule = "15 * * * *"', 'schedule = "soon"')
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, bad)
    assert "'encoding'" in str(err.value) and "'schedule'" in str(err.value)


def test_cli_fails_at_start_on_a_wrong_config(tmp_path: Path, monkeypatch, capsys) -> None:
    from etl.__main__ import main
    from queries.settings import get_settings

    path = tmp_path / "sources.toml"
    path.write_text(GOOD.replace('kind = "survey"', 'kind = "nps"'))
    monkeypatch.setenv("CX_SOURCES", str(path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    get_settings.cache_clear()
    try:
        assert main(["run"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert "source 'survey'" in err and "'kind'" in err


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    from queries.settings import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### A complete example"):]
    block = section[section.index("```toml") + len("```toml"):]
    block = block[: block.index("```")]
    path = tmp_path / "sources.toml"
    path.write_text(block)
    config = load_config(path)
    assert [s.adapter for s in config.sources] == ["csv", "csv", "qualtrics", "sql", "sql",
                                                   "http_json", "file"]
    feedback = config.get("app_feedback")
    assert feedback.http is not None and feedback.http.next == "links.next"
