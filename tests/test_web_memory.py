"""What a web worker imports is what it holds in memory, in each of gunicorn's workers:
the dashboard's statistics use scipy.special, never scipy.stats (50 MiB more per worker,
which took a worker past the 300 MB target at the large size)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from scipy import stats

from queries.stats import mean_ci, two_proportion_z, welch_t


def test_the_web_app_does_not_load_scipy_stats(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        from dashboard.app import create_app
        from queries.settings import load_settings
        create_app(load_settings(_env_file=None, database_url="sqlite:///{tmp_path}/cx.db",
                                 cx_data_dir="{tmp_path}",
                                 secret_key="test-secret-key-0123456789abcdefghij"))
        heavy = sorted(m for m in sys.modules if m.startswith(("scipy.stats", "sklearn")))
        print(",".join(heavy) or "none")
    """)
    from etl.migrate import upgrade
    from queries.db import make_engine

    upgrade(make_engine(f"sqlite:///{tmp_path}/cx.db"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "none"


def test_intervals_and_tests_equal_scipy_stats() -> None:
    """The same numbers as scipy.stats' t and normal distributions (the second method)."""
    ci = mean_ci(12, 12 * 3.5, 12 * 3.5**2 + 11 * 1.2**2)
    half = stats.t.ppf(0.975, 11) * 1.2 / 12**0.5
    assert abs(ci.low - (3.5 - half)) < 1e-9 and abs(ci.high - (3.5 + half)) < 1e-9
    test = welch_t(4.4, 0.81, 20, 3.5, 1.44, 12)
    a, b = 0.81 / 20, 1.44 / 12
    se = (a + b) ** 0.5
    df = (a + b) ** 2 / (a * a / 19 + b * b / 11)
    assert abs(test.p - 2 * stats.t.sf((4.4 - 3.5) / se, df)) < 1e-12
    assert abs(test.high - (0.9 + stats.t.ppf(0.975, df) * se)) < 1e-9
    z = two_proportion_z(60, 100, 45, 100)
    pooled = 105 / 200
    zz = 0.15 / (pooled * (1 - pooled) * (2 / 100)) ** 0.5
    assert abs(z.p - 2 * stats.norm.sf(zz)) < 1e-12
