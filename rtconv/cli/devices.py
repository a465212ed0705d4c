"""``rtconv devices``: list audio devices and host APIs for ``rtconv live``."""

from __future__ import annotations

import json

HELP = "list audio devices (index, host API, channels, default rate) for rtconv live"

DESCRIPTION = """\
List the audio devices PortAudio sees, with their index, host API (by
name: ALSA, JACK Audio Connection Kit, ...), input and output channel
counts and default sample rate; '>' marks the default input, '<' the
default output.  Pass an index or any unique part of a name to
`rtconv live --input-device/--output-device`.

examples:
  rtconv devices
  rtconv devices --hostapi jack
  rtconv devices --json
"""


def configure(parser) -> None:
    parser.add_argument("--hostapi", metavar="H", help="only devices of this host API (index or part of its name)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    from ..live import list_devices, list_hostapis
    from ..live.devices import NO_DEVICE_HINT, find_hostapi

    apis = list_hostapis()
    devs = list_devices(args.hostapi)
    if args.json:
        print(json.dumps({"hostapis": apis, "devices": devs}, indent=2))
        return 0
    known = ", ".join(a["name"] for a in apis) or "none"
    if not devs:
        where = f" on host API {apis[find_hostapi(args.hostapi)]['name']!r}" if args.hostapi is not None else ""
        print(f"no audio devices found{where} (PortAudio's host APIs: {known}); {NO_DEVICE_HINT}.")
        return 0
    print(f"host APIs: {known}")
    print(f"{'':2} {'idx':>3}  {'name':32} {'host API':28} {'in':>3} {'out':>3} {'rate':>7}")
    for d in devs:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        print(f"{mark} {d['index']:>3}  {d['name'][:32]:32} {d['hostapi'][:28]:28} "
              f"{d['max_input_channels']:>3} {d['max_output_channels']:>3} {d['default_samplerate']:>7.0f}")
    return 0
