"""Progress in audio time for files: a tqdm bar counting seconds of audio."""

from __future__ import annotations


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def audio_progress_bar(total_s: float, desc: str, **kw):
    """A tqdm bar counting seconds of audio (``update(seconds)``), on stderr.

    It reads ``desc:  40%|####      | 0:01:12 of 0:03:00 audio [00:02<00:03, 36x real time]``.
    """
    from tqdm import tqdm

    class AudioBar(tqdm):
        @property
        def format_dict(self):
            d = super().format_dict
            n, elapsed = d.get("n") or 0, d.get("elapsed") or 0
            d.update(audio=_hms(n), audio_total=_hms(d.get("total") or 0),
                     speed=f"{n / elapsed:.0f}x real time" if n and elapsed > 0 else "? x real time")
            return d

    kw.setdefault("leave", False)
    return AudioBar(total=total_s, desc=desc, bar_format="{desc}: {percentage:3.0f}%|{bar}| {audio} of "
                    "{audio_total} audio [{elapsed}<{remaining}, {speed}]", **kw)


def _stderr_tty() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())
