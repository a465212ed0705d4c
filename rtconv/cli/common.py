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


def probability(text: str) -> float:
    """argparse type: a threshold strictly between 0 and 1."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1 (exclusive), got {text!r} (e.g. 0.5)")
    return v


def nonnegative_seconds(text: str) -> float:
    """argparse type: a finite duration of 0 seconds or more."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a duration of 0 seconds or more, got {text!r} (e.g. 0.2)")
    return v


def attenuation_db(text: str) -> float:
    """argparse type: a denoiser's attenuation limit, a finite non-negative number of dB."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number of dB, got {text!r} (e.g. 12)")
    return value


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
