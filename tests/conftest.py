"""Shared test set-up.

Qt runs offscreen (no display on CI machines); set before anything imports Qt.
Area-specific fixtures live in the test modules of that area or in
``tests/_<area>.py`` helpers imported from here.

Tests never write into the user's real cache: an autouse session fixture
points ``RTCONV_CACHE`` (synthesized speech, the corpus) at a temporary
folder, and ``HOME`` at a temporary home so that nothing falls back to
``~/.cache/rtconv``.  Other programs keep their usual folders through
``XDG_CACHE_HOME`` and ``XDG_CONFIG_HOME`` (matplotlib's font list and
fontconfig are not rebuilt per run; a PulseAudio client still finds its
cookie).
No test needs a prebuilt rtconv cache: speech is synthesized again with
espeak-ng (once per session, then cached in the temporary folder) and the
corpus tests build their own tiny corpus.
"""

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

#: The user's real rtconv cache, as it was before the session fixture moved it (see test_issue14_cache.py).
REAL_HOME = Path.home()
REAL_RTCONV_CACHE = Path(os.environ["RTCONV_CACHE"]) if os.environ.get("RTCONV_CACHE") else REAL_HOME / ".cache" / "rtconv"


@pytest.fixture(autouse=True, scope="session")
def private_rtconv_cache(tmp_path_factory):
    """RTCONV_CACHE and HOME in temporary folders for the whole session; yields the cache folder."""
    cache = tmp_path_factory.mktemp("rtconv-cache")
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", os.environ.get("XDG_CACHE_HOME") or str(REAL_HOME / ".cache"))
        mp.setenv("XDG_CONFIG_HOME", os.environ.get("XDG_CONFIG_HOME") or str(REAL_HOME / ".config"))
        mp.setenv("RTCONV_CACHE", str(cache))
        mp.setenv("HOME", str(home))
        yield cache


@pytest.fixture(scope="module")
def jackd(request):
    """A dummy-backend JACK server for this test module (period: the module's JACK_PERIOD, default 256; see tests/_jackd.py; not _jack.py, which would shadow the cffi module of JACK-Client)."""
    from _jackd import jack_available, jack_server

    why = jack_available()
    if why:
        pytest.skip(why)
    with jack_server(period=getattr(request.module, "JACK_PERIOD", 256)) as server:
        yield server
