"""What processing a file did: :class:`Summary`, its one-line report and its warnings and notes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..dcblock import offset_note
from ..levelguard import level_note


@dataclass
class Summary:
    """What :func:`process_file` did, for the summary line and for callers."""

    input: Path | None
    output: Path | None
    model: str
    frames: int
    sample_rate: int
    channels: int
    out_channels: int
    model_rate: int
    mode: str
    latency: int
    aligned: bool
    elapsed_s: float
    nonfinite_samples: int = 0
    clipped_samples: int = 0
    output_frames: int = 0
    primed_frames: int = 0
    #: the mean DC offset removed before the model (full scale 1), None when not blocked
    dc_offset: float | None = None
    #: run forwards and backwards, averaged (``both_directions``)
    both_directions: bool = False
    #: the level guard's measure (dBFS): its speech's active level when the file was loud enough for the model's
    #: first pass, else the file's own; None when not guarded (filters, --keep-level); and the gain on the input
    level_db: float | None = None
    level_gain: float = 1.0
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Length of the input in seconds."""
        return self.frames / self.sample_rate

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio processed per second of wall time."""
        return self.duration_s / self.elapsed_s if self.elapsed_s > 0 else math.inf

    @property
    def resampled(self) -> bool:
        return self.model_rate != self.sample_rate

    def line(self) -> str:
        """The one-line summary ``rtconv process`` prints."""
        src = self.input.name if self.input else "array"
        dst = str(self.output) if self.output else "array"
        return (
            f"{src} -> {dst}: {self.duration_s:.2f} s, {self.sample_rate} Hz, "
            f"{self.channels}->{self.out_channels} ch, {self.model}, {self.mode}, "
            f"{self.elapsed_s:.2f} s ({self.realtime_factor:.0f}x real time)"
        )


def _mode(offline: bool, block_size: int) -> str:
    return "offline forward" if offline else f"streamed in {block_size}-frame blocks"


def _notes(summary: Summary) -> None:
    """Fill ``warnings`` (something was lost or changed) and ``notes`` (how it was done)."""
    w = summary.warnings
    if summary.resampled:
        note = f"resampled {summary.sample_rate} Hz -> {summary.model_rate} Hz for the model and back"
        if summary.model_rate < summary.sample_rate:  # a loss: a warning
            w.append(note + f"; content above {summary.model_rate // 2} Hz was removed")
        else:  # a 44.1 kHz file through a 48 kHz model loses nothing: a note
            summary.notes.append(note)
    if summary.out_channels != summary.channels:
        per = summary.out_channels // summary.channels if summary.out_channels % summary.channels == 0 else None
        how = f"{per} model outputs per input channel, channel-major" if per else "the model mixes the channels"
        summary.notes.append(
            f"the output has {summary.out_channels} channel(s) for {summary.channels} input channel(s) ({how})")
    if summary.primed_frames:
        ms = 1000 * summary.primed_frames / summary.model_rate
        summary.notes.append(
            f"each pass started from the first {ms:.0f} ms it meets played backwards (the file's start forwards, "
            "its end backwards) rather than from silence (--no-prime: from silence)" if summary.both_directions else
            f"the model started from the file's first {ms:.0f} ms played backwards rather than from silence "
            "(--no-prime: from silence)")
    dc = offset_note(summary.dc_offset)
    if dc:
        summary.notes.append(dc)
    lv = level_note(summary.level_gain, summary.level_db)
    if lv:
        summary.notes.append(lv)
    if summary.nonfinite_samples:
        w.append(f"{summary.nonfinite_samples} NaN/Inf input sample(s) were replaced by silence (0)")
    if summary.clipped_samples:
        w.append(f"{summary.clipped_samples} output sample(s) exceeded full scale and were clipped to [-1, 1]")
