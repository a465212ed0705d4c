"""Benchmarks behind ``rtconv bench NAME`` (one module each; see rtconv.cli.bench)."""
