"""The README's two fresh-machine commands: CI runs the second verbatim, the first can run twice."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)[:2]


def test_ci_runs_the_readme_test_command_verbatim():
    main, tests = _commands()
    assert "pytest" in tests and "rtconv process" in main
    ci = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert ci == [tests]


def test_both_commands_install_into_a_virtual_environment():
    """Debian 12's system Python refuses ``pip install`` (PEP 668): both commands make and use a venv."""
    for cmd in _commands():
        steps = [s.strip() for s in cmd.split("&&")]
        assert "python3-venv" in steps[1], "apt must install python3-venv"
        venv, activate = steps.index("python3 -m venv .venv"), steps.index(". .venv/bin/activate")
        first_pip = next(i for i, s in enumerate(steps) if s.startswith("pip "))
        assert venv < activate < first_pip


def test_the_test_command_installs_what_qt_and_pesq_need_on_a_minimal_debian():
    tests = _commands()[1]
    for pkg in ("libegl1", "libgl1", "libfontconfig1", "libxkbcommon0", "libglib2.0-0", "libdbus-1-3",
                "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "gcc", "python3-dev", "libportaudio2"):
        assert f" {pkg} " in f" {tests} ", pkg


def test_the_main_command_succeeds_twice_in_a_row(tmp_path):
    """Its rtconv step, run as written (on a copy of the demo recording), twice."""
    step = next(s.strip() for s in _commands()[0].split("&&") if s.strip().startswith("rtconv "))
    work = tmp_path / "recordings"
    work.mkdir()
    shutil.copy(ROOT / "recordings/demo_noisy.wav", work / "demo_noisy.wav")
    argv = [sys.executable, "-m", "rtconv", *step.split()[1:]]
    for attempt in (1, 2):
        r = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"run {attempt}: {r.stderr}"
    outputs = sorted(p.name for p in work.iterdir())
    assert outputs == ["demo_noisy-denoised.wav", "demo_noisy.wav"]


def test_help_and_usage_errors_do_not_import_torch():
    # `rtconv --help` used to take 2.4 s importing torch; the engine loads on first use
    code = ("import sys, argparse, rtconv, rtconv.cli as c\n"
            "for name, mod in c._modules():\n"
            "    mod.configure(argparse.ArgumentParser())\n"
            "assert 'torch' not in sys.modules and 'scipy' not in sys.modules, sorted(m for m in sys.modules if m in ('torch', 'scipy'))\n"
            "rtconv.FIR\n"
            "assert 'torch' in sys.modules\n"
            "assert rtconv.designs.lowpass and rtconv.Streamer and 'load' in dir(rtconv)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_package_installs_and_the_gui_installs_as_rtconv_gui_not_gui():
    """pyproject lists packages by hand (gui/ maps to rtconv_gui): a new package of rtconv/ must be listed."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conf = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(root).parts) for p in (root / "rtconv").rglob("__init__.py")}
    assert on_disk <= set(conf["packages"]), sorted(on_disk - set(conf["packages"]))
    assert conf["package-dir"] == {"rtconv_gui": "gui"} and "gui" not in conf["packages"]
