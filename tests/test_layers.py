"""The package dependency rules of docs/ARCHITECTURE.md hold in the code: every import of
every module (at any depth, inside functions too) stays inside what its package may use."""

from __future__ import annotations

import ast

import pytest

from queries.settings import ROOT

OURS = {"queries", "auth", "reports", "etl", "dashboard"}
MAY_USE = {
    "queries": {"queries"},
    "auth": {"auth", "queries", "reports"},
    "reports": {"reports", "auth", "queries"},
    "etl": {"etl", "reports", "queries"},
    "dashboard": {"dashboard", "reports", "auth", "queries"},
}


def imports_of(package: str, root=ROOT) -> list[tuple[str, str]]:
    """(module file, imported top-level package of ours) for every import in `package`."""
    found = []
    for path in sorted((root / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in OURS:
                    found.append((str(path.relative_to(root)), top))
    return found


# Only the Flask side of sign-in reads report tokens (a report token is the report page's
# principal); the rest of auth/ is below reports/, which uses it.
ONLY_IN = {("auth", "reports"): {"auth/web.py"}}


@pytest.mark.parametrize("package", sorted(MAY_USE))
def test_packages_import_only_what_they_may(package: str) -> None:
    found = imports_of(package)
    assert found, f"no imports found in {package}: the test reads the wrong files"
    wrong = sorted({(f, top) for f, top in found if top not in MAY_USE[package]
                    or f not in ONLY_IN.get((package, top), {f})})
    assert wrong == [], f"{package} may import only {sorted(MAY_USE[package])}: {wrong}"


def test_the_rules_catch_a_wrong_import(tmp_path) -> None:
    # What etl/delivery.py used to do: import the dashboard's renderer inside a function.
    (tmp_path / "etl").mkdir()
    (tmp_path / "etl" / "delivery.py").write_text(
        "import queries.schema\n\ndef f():\n    from dashboard.snapshot import R\n")
    assert imports_of("etl", tmp_path) == [("etl/delivery.py", "queries"),
                                           ("etl/delivery.py", "dashboard")]
