"""Flag groups shared by several subcommands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a number from 0 to 1 (a dry/wet mix)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {value}")
    return value


def _number(text: str, ok, expected: str) -> float:
    """``float(text)`` if ``ok`` of it, else the argparse error "expected EXPECTED" (not a number fails too)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}")
    return value


def probability(text: str) -> float:
    """argparse type: a threshold strictly between 0 and 1."""
    return _number(text, lambda v: 0.0 < v < 1.0,
                   f"a probability between 0 and 1 (exclusive), got {text!r} (e.g. 0.5)")


def nonnegative_seconds(text: str) -> float:
    """argparse type: a finite duration of 0 seconds or more."""
    return _number(text, lambda v: 0.0 <= v < float("inf"), f"a duration of 0 seconds or more, got {text!r} (e.g. 0.2)")


def attenuation_db(text: str) -> float:
    """argparse type: a denoiser's attenuation limit, a finite non-negative number of dB."""
    return _number(text, lambda v: 0.0 <= v < float("inf"), f"a non-negative number of dB, got {text!r} (e.g. 12)")


def floor_db(text: str) -> float:
    """argparse type: a gain floor of 0 dB or below, or ``silence`` (-inf)."""
    if text.strip().lower() == "silence":
        return float("-inf")
    return _number(text, lambda v: v <= 0, f"a floor of 0 dB or below, or 'silence', got {text!r} (e.g. -30)")


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
