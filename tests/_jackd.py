"""Test-side name of :mod:`rtconv.live.jackd` (the dummy JACK server and loopback clients)."""

from rtconv.live.jackd import JackServer, Loopback, jack_available, jack_server, wait_for  # noqa: F401
