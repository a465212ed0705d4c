"""The argparse types and flag groups the subcommands share."""

from __future__ import annotations

import argparse
import json
import math


# --- argparse types: the one set every subcommand uses -------------------------------------
# Each refuses in one line, "expected WHAT, got 'TEXT'", which argparse prefixes with the flag.

_INF = float("inf")


def _number(text: str, ok, expected: str, example: str | None = None, parse=float):
    """``parse(text)`` if ``ok`` of it, else the argparse error "expected EXPECTED, got TEXT" (unparsable fails too)."""
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        eg = f" (e.g. {example})" if example else ""
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}{eg}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a count of 1 or more (frames, threads, jobs)."""
    return _number(text, lambda v: v >= 1, "a positive integer", parse=int)


def seed(text: str) -> int:
    """argparse type: a random seed, 0 to 2**32 - 1 (what numpy's generators take)."""
    return _number(text, lambda v: 0 <= v < 2**32, "a seed from 0 to 4294967295", "0", parse=int)


def nonnegative_number(text: str) -> float:
    """argparse type: a finite number of 0 or more (SGD momentum, weight decay)."""
    return _number(text, lambda v: 0 <= v < _INF, "a number of 0 or more")


def sample_rate_hz(text: str) -> int:
    """argparse type: a sample rate rtconv reads and writes files at (1000 to 768000 Hz)."""
    from ..audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    return _number(text, lambda v: MIN_SAMPLE_RATE <= v <= MAX_SAMPLE_RATE,
                   f"a sample rate from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz", "48000", parse=int)


#: The longest filter or block a command takes: 2**20 frames, 21.8 s at 48 kHz
MAX_FRAMES = 2**20


def frame_count(text: str) -> int:
    """argparse type: taps or a block size, 1 to :data:`MAX_FRAMES`."""
    return _number(text, lambda v: 1 <= v <= MAX_FRAMES, f"a whole number from 1 to {MAX_FRAMES}", parse=int)


def window_spec(text: str):
    """argparse type: a ``scipy.signal.get_window`` window: a name (``hann``) or a name and its parameters
    (``kaiser,8``), returned as the string or tuple scipy takes."""
    from scipy import signal

    parts = [p.strip() for p in text.split(",")]
    try:
        spec = parts[0] if len(parts) == 1 else (parts[0], *(float(p) for p in parts[1:]))
        signal.get_window(spec, 8)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(
            f"expected a scipy.signal window such as hamming, hann, blackman, or one with its parameter such as "
            f"kaiser,8, got {text!r}") from None
    return spec


def clip_seconds(text: str) -> float:
    """argparse type: a training example's length, above 0 and at most 600 s (examples are held in memory)."""
    return _number(text, lambda v: 0 < v <= 600, "a clip length above 0 and at most 600 seconds", "4")


#: The most test mixtures per (SNR, noise) cell: each is 6 s of mixture and reference held in memory (2.3 MB at
#: 48 kHz), so 20 is about 1,900 grid items, 4.4 GB and hours of scoring beside the peers
MAX_PER_CELL = 20


def per_cell(text: str) -> int:
    """argparse type: test mixtures per (SNR, noise) cell, 1 to :data:`MAX_PER_CELL`."""
    return _number(text, lambda v: 1 <= v <= MAX_PER_CELL,
                   f"a number of mixtures per cell from 1 to {MAX_PER_CELL}", "3", parse=int)


def live_block(text: str) -> int:
    """argparse type: frames per live audio block, 1 to :data:`rtconv.live.settings.MAX_BLOCK`."""
    from ..live.settings import MAX_BLOCK

    return _number(text, lambda v: 1 <= v <= MAX_BLOCK, f"a block of 1 to {MAX_BLOCK} frames", "128", parse=int)


def process_count(text: str) -> int:
    """argparse type: a number of helper processes, 0 to 256."""
    return _number(text, lambda v: 0 <= v <= 256, "a number of processes from 0 to 256", "2", parse=int)


def epoch_count(text: str) -> int:
    """argparse type: a number of epochs, 0 or more."""
    return _number(text, lambda v: v >= 0, "a number of epochs (0 or more)", parse=int)


def positive_number(text: str) -> float:
    """argparse type: a number above 0 (a learning rate, a norm, seconds, dB)."""
    return _number(text, lambda v: v > 0, "a positive number")


def unit_fraction(text: str) -> float:
    """argparse type: a number from 0 to 1 (a dry/wet mix)."""
    return _number(text, lambda v: 0 <= v <= 1, "a number between 0 and 1")


def probability(text: str) -> float:
    """argparse type: a threshold strictly between 0 and 1."""
    return _number(text, lambda v: 0.0 < v < 1.0, "a probability between 0 and 1 (exclusive)", "0.5")


def frequency_hz(text: str) -> float:
    """argparse type: a frequency above 0 Hz."""
    return _number(text, lambda v: v > 0, "a positive frequency in Hz", "1000")


def positive_seconds(text: str) -> float:
    """argparse type: a duration of more than 0 seconds."""
    return _number(text, lambda v: v > 0, "a duration of more than 0 seconds", "10")


def device_latency(text: str):
    """argparse type: what PortAudio buffers per device, by :class:`rtconv.live.StreamSettings`' rule."""
    from ..live.settings import DEVICE_LATENCIES, MAX_DEVICE_LATENCY_S, device_latency_seconds_ok

    if text in DEVICE_LATENCIES:
        return text
    return _number(text, device_latency_seconds_ok,
                   f"'low', 'high' or seconds above 0 and at most {MAX_DEVICE_LATENCY_S:g}", "0.02")


def nonnegative_seconds(text: str) -> float:
    """argparse type: a finite duration of 0 seconds or more."""
    return _number(text, lambda v: 0.0 <= v < _INF, "a duration of 0 seconds or more", "0.2")


def attenuation_db(text: str) -> float:
    """argparse type: a denoiser's attenuation limit, a finite non-negative number of dB."""
    return _number(text, lambda v: 0.0 <= v < _INF, "a non-negative number of dB", "12")


def gain_db(text: str) -> float:
    """argparse type: an output gain from -60 to +24 dB."""
    return _number(text, lambda v: -60 <= v <= 24, "a gain between -60 and +24 dB", "-6")


def floor_db(text: str) -> float:
    """argparse type: a gain floor of 0 dB or below, or ``silence`` (-inf)."""
    if text.strip().lower() == "silence":
        return float("-inf")
    return _number(text, lambda v: v <= 0, "a floor of 0 dB or below, or 'silence'", "-30")


def _numbers(text: str) -> list:
    """'40,40' -> [40, 40]; '-5,2.5' -> [-5, 2.5]: integers stay integers (ValueError if one is not a number)."""
    return [int(p) if p.lstrip("-").isdigit() else float(p) for p in text.replace(" ", "").split(",") if p != ""]


def number_list(text: str):
    """argparse type: one number ('21' -> 21) or comma-separated numbers ('40,40' -> [40, 40])."""
    vals = _number(text, bool, "a number or comma-separated numbers", parse=_numbers)
    return vals[0] if len(vals) == 1 and "," not in text else vals


def number_range(text: str) -> list[float]:
    """argparse type: 'LOW,HIGH' with LOW <= HIGH -> [LOW, HIGH] (write --flag=-5,20 when LOW is negative)."""
    vals = _number(text, lambda v: len(v) == 2 and v[0] <= v[1], "LOW,HIGH with LOW <= HIGH", parse=_numbers)
    return [float(x) for x in vals]


def loss_text(text: str) -> str:
    """argparse type: a named loss or a weighted sum of loss terms (:func:`rtconv.train.choices.parse_loss`)."""
    from ..train.choices import parse_loss  # imports nothing: --help stays free of torch

    try:
        parse_loss(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip()


def name_weights(names: tuple[str, ...]):
    """argparse type factory: 'A=W,B=W' over ``names`` -> {A: W, ...}, weights >= 0, some positive."""

    def parse(text: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.strip().partition("=")
            try:
                w = float(value)
            except ValueError:
                w = -1.0
            if not sep or key.strip() not in names or not 0 <= w < math.inf or key.strip() in out:
                raise argparse.ArgumentTypeError(
                    f"cannot read {part.strip()!r} in {text!r}: write NAME=WEIGHT pairs separated by commas, "
                    f"each name once among {', '.join(names)}, weights 0 or more, e.g. "
                    f"{','.join(f'{n}=1' for n in names)}")
            out[key.strip()] = w
        if not any(out.values()):
            raise argparse.ArgumentTypeError(f"at least one weight in {text!r} must be positive")
        return out

    return parse


def key_value(text: str) -> tuple[str, object]:
    """argparse type: 'KEY=VALUE' -> (KEY, VALUE parsed as JSON, else the text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (VALUE as JSON), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# --- flag groups -------------------------------------------------------------------------


def add_model_args(parser: argparse.ArgumentParser, default_help: str = "the shipped default model") -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--model", "-m", metavar="PATH", help=f"checkpoint to run (default: {default_help})")


def add_block_args(parser: argparse.ArgumentParser, default: int) -> None:
    g = parser.add_argument_group("streaming")
    g.add_argument(
        "--block-size", "-b", type=positive_int, default=default, metavar="N",
        help="frames per block handed to the streamer (default: %(default)s)",
    )
    g.add_argument(
        "--threads", type=positive_int, default=1, metavar="N",
        help="torch threads for the model (default: %(default)s)",
    )
