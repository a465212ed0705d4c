"""What a non-editable install (a wheel) ships: every package of the source tree, under its name."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _packages_in(folder: Path, name: str) -> set[str]:
    return {name + "".join("." + p for p in d.relative_to(folder).parts)
            for d in [folder, *folder.rglob("*")] if d.is_dir() and (d / "__init__.py").is_file()}


def test_every_package_folder_is_listed_for_the_wheel():
    """[tool.setuptools] packages is an explicit list: a new sub-package left out of it imports in a checkout
    (and an editable install) but is missing from a wheel, where `import rtconv` then fails."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    dirs = cfg.get("package-dir", {})
    want = _packages_in(ROOT / "rtconv", "rtconv") | {
        p for name, d in dirs.items() for p in _packages_in(ROOT / d, name)}
    assert want - listed == set(), f"add {sorted(want - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert listed - want == set(), f"{sorted(listed - want)} in [tool.setuptools] packages are no packages"
