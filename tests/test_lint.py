"""The code passes `ruff check` with the project's rules ([tool.ruff] in pyproject.toml): mistakes, not layout."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_ruff_finds_no_mistakes_in_the_code_the_gui_and_the_tests():
    r = _ruff("rtconv", "gui", "tests")
    assert "No module named ruff" not in r.stderr, "ruff is in the test extra: pip install -e '.[test]'"
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_lint_can_fail(tmp_path):
    """The same rules find an unused import and an undefined name in a file that has them."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f():\n    return undefined_name\n")
    r = _ruff("--config", str(ROOT / "pyproject.toml"), str(bad))
    assert r.returncode == 1 and "F401" in r.stdout and "F821" in r.stdout, r.stdout + r.stderr
