"""Shared test set-up.

Qt runs offscreen (no display on CI machines); set before anything imports Qt.
Area-specific fixtures live in the test modules of that area or in
``tests/_<area>.py`` helpers imported from here.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def jackd(request):
    """A dummy-backend JACK server for this test module (period: the module's JACK_PERIOD, default 256; see tests/_jackd.py; not _jack.py, which would shadow the cffi module of JACK-Client)."""
    from _jackd import jack_available, jack_server

    why = jack_available()
    if why:
        pytest.skip(why)
    with jack_server(period=getattr(request.module, "JACK_PERIOD", 256)) as server:
        yield server
