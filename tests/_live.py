"""Shared helpers for the live tests: a processor from the numbers a test cares about."""

from __future__ import annotations

from rtconv.live import LiveProcessor, StreamSettings

_SETTINGS = ("crossfade_ms", "resample_quality", "engine", "threads", "hostapi", "input_device", "output_device",
             "output_channels", "record_dir", "device_latency", "dc_block", "level_guard")


def settings(sample_rate=48000, channels=1, block_size=128, **kw) -> StreamSettings:
    return StreamSettings(sample_rate=sample_rate, channels=channels, block_size=block_size, **kw)


def processor(model, sample_rate=48000, channels=1, block_size=128, **kw) -> LiveProcessor:
    """``LiveProcessor(model, StreamSettings(...))``: settings fields and processor options in one call."""
    st = {k: kw.pop(k) for k in list(kw) if k in _SETTINGS}
    return LiveProcessor(model, settings(sample_rate, channels, block_size, **st), **kw)


def cli_settings(*argv, sample_rate=48000) -> StreamSettings:
    """The StreamSettings ``rtconv live ARGV`` would open a stream with, at ``sample_rate``."""
    import argparse

    from rtconv.cli import live

    p = argparse.ArgumentParser()
    live.configure(p)
    args = p.parse_args(list(argv))
    args.sample_rate = sample_rate
    return live._settings(args, sample_rate)
