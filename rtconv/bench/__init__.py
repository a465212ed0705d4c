"""Benchmarks behind ``rtconv bench NAME``, and the tooling they share with the tests.

A module here that defines ``HELP`` is a benchmark (see :mod:`rtconv.cli.bench`);
the others are tooling kept out of the runtime package: :mod:`.heldout` (the
held-out denoiser test set and its scores) and :mod:`.jackd` (a dummy-backend
JACK server and loopback clients).  ``rtconv --help`` imports every module here
to list the benchmarks, so heavy libraries (torch, sounddevice, Qt) are
imported inside functions only.
"""
