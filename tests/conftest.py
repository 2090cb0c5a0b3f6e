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
