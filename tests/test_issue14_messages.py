"""Messages (issue 14): host APIs by name, a no-device hint that names PipeWire, readable bench help, one RNNoise latency."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rtconv import DeviceError
from rtconv.cli import main
from rtconv.live import devices

ROOT = Path(__file__).resolve().parent.parent


class _FakePortAudio:
    """What sounddevice reports on a machine whose host APIs have no (or few) devices."""

    def __init__(self, devs=()):
        self.apis = [{"name": "ALSA", "devices": [], "default_input_device": -1, "default_output_device": -1},
                     {"name": "OSS", "devices": [], "default_input_device": -1, "default_output_device": -1}]
        self.devs = [dict(d, index=i) for i, d in enumerate(devs)]

        class _Default:
            device = (-1, -1)

        self.default = _Default()

    def query_hostapis(self, index=None):
        return self.apis if index is None else self.apis[index]

    def query_devices(self, index=None):
        return self.devs if index is None else self.devs[index]


def _dev(name, api, ins, outs):
    return {"name": name, "hostapi": api, "max_input_channels": ins, "max_output_channels": outs,
            "default_samplerate": 48000.0, "default_low_input_latency": 0.01, "default_low_output_latency": 0.01}


@pytest.fixture
def no_devices(monkeypatch):
    fake = _FakePortAudio()
    monkeypatch.setattr(devices, "_sd", lambda: fake)
    return fake


@pytest.mark.parametrize("hostapi", [0, "0", "alsa"])
def test_no_device_on_a_host_api_names_it_and_the_sound_servers_to_check(no_devices, hostapi):
    with pytest.raises(DeviceError) as info:
        devices.find_device(None, "input", hostapi=hostapi)
    msg = str(info.value)
    assert msg.startswith("no audio devices were found on host API 'ALSA'; ")
    assert "host API 0" not in msg and "PipeWire" in msg and "JACK" in msg
    assert "\n" not in msg and msg.endswith(".")


def test_a_host_api_index_that_does_not_exist_lists_them_by_name(no_devices):
    with pytest.raises(DeviceError, match=r"there is no host API with index 5 \(PortAudio has 0: 'ALSA', 1: 'OSS'\)"):
        devices.find_hostapi(5)


def test_an_ambiguous_device_names_the_host_api_of_each_candidate(monkeypatch):
    fake = _FakePortAudio([_dev("USB mic", 0, 1, 0), _dev("USB mic", 1, 1, 0)])
    monkeypatch.setattr(devices, "_sd", lambda: fake)
    with pytest.raises(DeviceError, match=r"matches 0: 'USB mic' \(ALSA\), 1: 'USB mic' \(OSS\)"):
        devices.find_device("usb", "input")


def test_rtconv_devices_with_none_found_names_the_host_apis_and_pipewire(no_devices, capsys):
    assert main(["devices", "--hostapi", "0"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("no audio devices found on host API 'ALSA' (PortAudio's host APIs: ALSA, OSS)")
    assert "PipeWire" in out and "\n" not in out


def test_bench_denoise_help_is_plain_text_with_its_list_kept(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "denoise", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for markup in ("``", ":class:", ":mod:", "**"):
        assert markup not in text, markup
    lines = text.splitlines()
    assert [n for n in ("1.", "2.", "3.") if any(line.startswith(n + " ") for line in lines)] == ["1.", "2.", "3."]


def _rnnoise_latency_mentions(text: str) -> list[str]:
    """Each statement of RNNoise's latency or lag, with 150 characters either side."""
    flat = " ".join(text.split())
    pattern = r"RNNoise[:’']?s? (?:latency )?(?:is )?\(?\d+(?:\.\d+)? ms|\d+-sample(?: = \d+ ms)? (?:output )?lag"
    return [flat[max(0, m.start() - 150): m.end() + 150] for m in re.finditer(pattern, flat)]


@pytest.mark.parametrize("path", ["README.md", "rtconv/bench/denoise.py"])
def test_rnnoise_latency_is_stated_one_way_30_ms_as_frame_plus_measured_lag(path):
    import rtconv.bench.heldout as ev

    if path.endswith(".py"):
        import rtconv.bench.denoise as bench

        text = bench.DESCRIPTION  # the help text; the printed report takes heldout's constant
    else:
        text = (ROOT / path).read_text()
    found = _rnnoise_latency_mentions(text)
    assert found, path
    for s in found:
        assert f"{ev.RNNOISE_LATENCY_MS:g} ms" in s and "480-sample frame" in s and "960-sample" in s, s
