"""The speech-activity labels and cross-entropy of the ``presence`` loss term."""

from __future__ import annotations

import pytest
import torch

from rtconv.train.losses import presence_loss, speech_labels


def _burst(T=4800, start=1600, stop=2400, level=0.5):
    t = torch.zeros(2, 1, T)
    t[0, 0, start:stop] = level * torch.sin(torch.arange(stop - start) * 0.3)
    return t  # example 1 stays silent: noise only


@pytest.mark.parametrize("offset", [0, 37])
def test_speech_labels_mark_the_burst_and_its_hangover_and_nothing_of_a_silent_target(offset):
    stride, window, hang = 96, 192, 960
    t = _burst()
    frames = (t.shape[-1] + offset) // stride + 2  # a few frames past the end: not covered
    labels, valid = speech_labels(t, stride, window, frames, offset=offset, hangover=hang)
    ends = (torch.arange(frames) + 1) * stride - offset
    assert valid[0, 0].tolist() == ((ends - window >= 0) & (ends <= t.shape[-1])).tolist()
    on = labels[0, 0].bool() & valid[0, 0]
    # a frame overlapping the burst is speech, as is every frame up to the hangover after it
    overlapping = (ends > 1600) & (ends - window < 2400) & valid[0, 0]
    assert on[overlapping].all()
    last_on = int(torch.nonzero(on).max())
    assert ends[last_on] - window < 2400 + hang + stride and ends[last_on] - window >= 2400
    before = valid[0, 0] & (ends <= 1600)
    assert not on[before].any()  # no speech before the burst: causal labels, no look-ahead
    assert labels[1].sum() == 0  # a silent target has no speech anywhere


def test_presence_loss_is_low_for_the_labels_and_high_for_their_opposite():
    class Probe:
        stride, window, offset = 96, 192, 0

        def __init__(self, p):
            self.p = p

        def presence(self, batch):
            assert batch == self.p.shape[0]
            return self.p

    t = _burst()
    frames = t.shape[-1] // 96
    labels, _ = speech_labels(t, 96, 192, frames)
    right = presence_loss(t, t, t, probe=Probe(labels * 0.98 + 0.01))
    wrong = presence_loss(t, t, t, probe=Probe((1 - labels) * 0.98 + 0.01))
    assert right < 0.05 < 3.0 < wrong
