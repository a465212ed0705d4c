"""Test-side name of :mod:`rtconv.bench.jackd` (the dummy JACK server and loopback clients)."""

from rtconv.bench.jackd import JackServer, Loopback, jack_available, jack_server, wait_for  # noqa: F401
