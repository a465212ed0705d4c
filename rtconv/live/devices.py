"""Finding audio devices by name or index, with errors that say how to list them."""

from __future__ import annotations

from typing import Any

from ..errors import DeviceError

__all__ = ["list_devices", "list_hostapis", "find_device", "find_hostapi", "hostapi_name", "pick_sample_rate",
           "NO_DEVICE_HINT"]

_HINT = "run `rtconv devices` to list them"
#: What to check when PortAudio sees no device at all.
NO_DEVICE_HINT = "check that a sound server (PipeWire, PulseAudio or JACK) is running and that this user may use it"


def _sd():
    try:
        import sounddevice as sd
    except OSError as e:  # libportaudio2 missing
        raise DeviceError(f"PortAudio is not available ({e}); install the system package libportaudio2.") from None
    from .client import name_client

    name_client(sd)  # "rtconv" in JACK/PipeWire patchbays, not "PortAudio"
    return sd


def list_hostapis() -> list[dict[str, Any]]:
    """Host APIs (ALSA, JACK, ...) with their index and default devices."""
    sd = _sd()
    return [
        {"index": i, "name": h["name"], "devices": list(h["devices"]),
         "default_input": h["default_input_device"], "default_output": h["default_output_device"]}
        for i, h in enumerate(sd.query_hostapis())
    ]


def _api_names(apis) -> str:
    return ", ".join(f"{a['index']}: {a['name']!r}" for a in apis) or "none"


def hostapi_name(index: int) -> str:
    """The name of host API ``index`` (``"ALSA"``, ``"JACK Audio Connection Kit"``, ...)."""
    apis = list_hostapis()
    return apis[index]["name"] if 0 <= index < len(apis) else f"host API {index}"


def find_hostapi(query) -> int:
    """Host API index from an index or a case-insensitive name substring."""
    apis = list_hostapis()
    if isinstance(query, int) or (isinstance(query, str) and query.strip().isdigit()):
        i = int(query)
        if 0 <= i < len(apis):
            return i
        raise DeviceError(f"there is no host API with index {i} (PortAudio has {_api_names(apis)}); "
                          "name one, e.g. --hostapi alsa.")
    hits = [a for a in apis if str(query).lower() in a["name"].lower()]
    if len(hits) == 1:
        return hits[0]["index"]
    names = ", ".join(repr(a["name"]) for a in (hits or apis))
    what = "matches several" if hits else "matches none"
    raise DeviceError(f"host API {query!r} {what} of {names}; {_HINT}.")


def list_devices(hostapi=None) -> list[dict[str, Any]]:
    """Devices as dicts: index, name, host API, channel counts, default rate and latencies, defaults."""
    sd = _sd()
    apis = sd.query_hostapis()
    want = None if hostapi is None else find_hostapi(hostapi)
    try:
        din, dout = sd.default.device
    except Exception:  # pragma: no cover
        din = dout = -1
    out = []
    for d in sd.query_devices():
        if want is not None and d["hostapi"] != want:
            continue
        api = apis[d["hostapi"]]
        out.append({
            "index": d["index"],
            "name": d["name"],
            "hostapi": api["name"],
            "max_input_channels": d["max_input_channels"],
            "max_output_channels": d["max_output_channels"],
            "default_samplerate": d["default_samplerate"],
            "default_low_input_latency": d["default_low_input_latency"],
            "default_low_output_latency": d["default_low_output_latency"],
            "default_input": d["index"] in (din, api["default_input_device"]) and d["max_input_channels"] > 0,
            "default_output": d["index"] in (dout, api["default_output_device"]) and d["max_output_channels"] > 0,
        })
    return out


def find_device(query=None, kind: str = "input", hostapi=None, channels: int = 1) -> int:
    """Device index for ``query`` (index, name substring or None for the default).

    Raises
    ------
    DeviceError
        Naming the query, what matched (all candidates when ambiguous), and
        how to list devices.
    """
    key = f"max_{kind}_channels"
    devs = list_devices(hostapi)
    if not devs:
        where = f" on host API {hostapi_name(find_hostapi(hostapi))!r}" if hostapi is not None else ""
        raise DeviceError(f"no audio devices were found{where}; {NO_DEVICE_HINT}, then {_HINT}.")
    usable = [d for d in devs if d[key] > 0]
    if query is None or query == "":
        pick = [d for d in usable if d[f"default_{kind}"]] or usable
        if not pick:
            raise DeviceError(f"there is no {kind} device; {_HINT}.")
        d = pick[0]
    elif isinstance(query, int) or (isinstance(query, str) and query.strip().lstrip("-").isdigit()):
        i = int(query)
        match = [d for d in devs if d["index"] == i]
        if not match:
            raise DeviceError(f"there is no audio device with index {i}; {_HINT}.")
        d = match[0]
    else:
        match = [d for d in devs if query.lower() in d["name"].lower()]
        exact = [d for d in match if d["name"].lower() == query.lower()]
        with_ch = [d for d in match if d[key] > 0]
        match = exact or (with_ch if len(with_ch) == 1 else match)
        if not match:
            raise DeviceError(f"no {kind} device matches {query!r}; {_HINT}.")
        if len(match) > 1:
            names = ", ".join(f"{m['index']}: {m['name']!r} ({m['hostapi']})" for m in match)
            raise DeviceError(f"{kind} device {query!r} is ambiguous, it matches {names}; give the index or more of the name.")
        d = match[0]
    if d[key] < channels:
        raise DeviceError(
            f"{kind} device {d['index']}: {d['name']!r} has {d[key]} {kind} channel(s), "
            f"{channels} requested; pick another device ({_HINT}) or use fewer channels."
        )
    return d["index"]


def pick_sample_rate(settings, model_rate: int | None) -> int:
    """The rate to open ``settings``' devices at: the model's when both devices take it (no
    resampling), else the input device's default.

    ``settings`` is a :class:`rtconv.live.settings.StreamSettings` (its own
    ``sample_rate`` is not consulted: call this when the user gave none).
    """
    sd = _sd()
    api = None if settings.hostapi is None else find_hostapi(settings.hostapi)
    ind = find_device(settings.input_device, "input", api, settings.channels)
    outd = find_device(settings.output_device, "output", api, settings.channels)
    if model_rate:
        try:
            sd.check_input_settings(ind, channels=settings.channels, samplerate=model_rate, dtype="float32")
            sd.check_output_settings(outd, channels=settings.channels, samplerate=model_rate, dtype="float32")
            return int(model_rate)  # no resampling needed
        except Exception:  # noqa: BLE001 - PortAudio says no in many ways; the default rate is the answer
            pass
    return int(sd.query_devices(ind)["default_samplerate"])
