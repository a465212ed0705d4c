"""Tests never write into the user's real ~/.cache/rtconv (issue 14): conftest moves the cache for the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import REAL_HOME, REAL_RTCONV_CACHE

from rtconv.data import corpus
from rtconv.train import speech


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def test_every_rtconv_cache_default_points_away_from_the_real_cache(private_rtconv_cache):
    assert Path(os.environ["RTCONV_CACHE"]) == private_rtconv_cache
    for default in (speech.default_cache_dir(), corpus.corpus_dir()):
        assert _inside(default, private_rtconv_cache), default
        assert not _inside(default, REAL_RTCONV_CACHE), default
    assert not _inside(Path.home(), REAL_HOME)  # a default that falls back to ~ lands in the session's home too


def _listing(folder: Path) -> dict:
    if not folder.is_dir():
        return {}
    # lstat: a built corpus holds packages' unpacked symlinks, some dangling (a licence linked to
    # /usr/share/common-licenses, which the unpacked tree lacks)
    return {p: p.lstat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.skipif(not speech.espeak_available(), reason="espeak-ng is not installed")
def test_synthesizing_speech_without_a_cache_dir_leaves_the_real_cache_untouched(private_rtconv_cache):
    before = _listing(REAL_RTCONV_CACHE)
    utt = speech.utterances("train", 1, seed=1414)[0]
    x = speech.synthesize(utt, 8000)  # no cache_dir: the default cache
    assert x.size > 0
    assert list((private_rtconv_cache / "speech" / "8000").glob("*.npy")), "the session cache was not used"
    assert _listing(REAL_RTCONV_CACHE) == before
