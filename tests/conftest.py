import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "fixtures" / "toy"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def adrs(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300):
    """Run the real CLI in a subprocess; returns CompletedProcess with text output."""
    e = {**os.environ, **(env or {})}
    e["PYTHONPATH"] = str(ROOT)
    e["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "evolve.cli.main", *args], cwd=cwd or ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def toy_copy(tmp_path: Path) -> Path:
    """A writable copy of the toy problem, for tests that break its spec."""
    import shutil
    dst = tmp_path / "toy"
    shutil.copytree(TOY, dst)
    return dst


# -- the lineage store on SQLite and on a real PostgreSQL (tests/pgcluster.py) ----------------------------
@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the whole session; skips, saying why, where it cannot be had."""
    from tests import pgcluster
    bindir, why = pgcluster.find_bin()
    if bindir is None:
        pytest.skip(why)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the psycopg driver is not installed (pip install 'psycopg[binary]')")
    cluster = pgcluster.start(bindir)
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database."""
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str:
    """The URL of a fresh lineage database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lineage.db'}"
    return request.getfixturevalue("pg_url")
