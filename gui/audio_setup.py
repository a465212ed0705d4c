"""Audio set-up box: host API, devices (default marked), sample rate, block size, engine, device buffering,
start/stop.

This widget lists and remembers choices; starting the stream is the
window's job, which calls :meth:`AudioSetup.choice` to read the current
selection and :meth:`AudioSetup.set_choice` to restore a previous one when
a device fails to open.  Choices persist in QSettings between runs.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

from . import engine

__all__ = ["AudioSetup", "RATES", "BLOCKS", "BUFFERING"]

RATES = (16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)
BLOCKS = (32, 64, 128, 256, 512, 1024, 2048)
#: What PortAudio is asked to buffer per device (:class:`rtconv.live.StreamSettings`' ``device_latency``), as shown
BUFFERING = {"low": "low (least delay)", 0.02: "20 ms", 0.05: "50 ms", "high": "high"}


def _buffering(value):
    """A remembered buffering (QSettings keeps text) as a :data:`BUFFERING` key, or None."""
    for key in BUFFERING:
        if str(key) == str(value):
            return key
    return None


def _is_default(dev: dict, kind: str) -> bool:
    return bool(dev.get(f"default_{kind}") or dev.get(f"is_default_{kind}") or dev.get("default") == kind)


class AudioSetup(QtWidgets.QGroupBox):
    """Device and stream settings with a start/stop button."""

    start_requested = QtCore.pyqtSignal()
    stop_requested = QtCore.pyqtSignal()
    #: After a Rescan, the chosen host API or devices that are gone, and what is shown instead (one sentence).
    devices_gone = QtCore.pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__("Audio", parent)
        self.hostapi = QtWidgets.QComboBox()
        self.input = QtWidgets.QComboBox()
        self.output = QtWidgets.QComboBox()
        for c in (self.input, self.output):
            c.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            c.setMinimumContentsLength(18)
        self.rate = QtWidgets.QComboBox()
        for r in RATES:
            self.rate.addItem(f"{r} Hz", r)
        self.rate.setCurrentIndex(RATES.index(48000))
        self.block = QtWidgets.QComboBox()
        for b in BLOCKS:
            self.block.addItem(f"{b} samples", b)
        self.block.setCurrentIndex(BLOCKS.index(128))
        self.engine = QtWidgets.QComboBox()
        self.engine.setToolTip("what computes each block (same output): torch, rtconv's own cells (the fastest "
                               "for the denoiser), or the model's ONNX step in onnxruntime (faster for "
                               "sample-rate convolution nets)")
        for name, why in engine.engines().items():
            self.engine.addItem(name, name)
            if why:  # listed, greyed out, with what to install
                item = self.engine.model().item(self.engine.count() - 1)
                item.setEnabled(False)
                item.setToolTip(why)
        self.buffering = QtWidgets.QComboBox()
        self.buffering.setToolTip("what the audio devices buffer: more costs delay and spares dropouts where the "
                                  "system or a sound server's bridge holds the CPU (rtconv live --device-latency)")
        for key, text in BUFFERING.items():
            self.buffering.addItem(text, key)
        self.channels = QtWidgets.QSpinBox(minimum=1, maximum=2)
        self.channels.setToolTip("1 = mono model on one channel; 2 = run it per channel or a 2-in MIMO model")
        self.refresh_button = QtWidgets.QPushButton("Rescan")
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setCheckable(True)
        self.state = QtWidgets.QLabel("stopped")
        self.state.setWordWrap(True)

        form = QtWidgets.QFormLayout(self)
        api_row = QtWidgets.QHBoxLayout()
        api_row.addWidget(self.hostapi, 1)
        api_row.addWidget(self.refresh_button)
        form.addRow("Host API", api_row)
        form.addRow("Input", self.input)
        form.addRow("Output", self.output)
        rb = QtWidgets.QHBoxLayout()
        rb.addWidget(self.rate)
        rb.addWidget(self.block)
        rb.addWidget(self.channels)
        form.addRow("Rate / block / channels", rb)
        form.addRow("Engine", self.engine)
        form.addRow("Buffering", self.buffering)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.state, 1)
        form.addRow(row)

        self.hostapi.currentIndexChanged.connect(self._fill_devices)
        self.refresh_button.clicked.connect(self.rescan)
        self.start_button.clicked.connect(self._start_clicked)
        self.error: str | None = None

    # --- listing --------------------------------------------------------------
    def rescan(self) -> None:
        """Re-list host APIs and devices; a PortAudio failure is shown, not raised."""
        keep = self.choice()
        self.hostapi.blockSignals(True)
        self.hostapi.clear()
        try:
            apis = engine.list_hostapis()
            self.error = None
        except Exception as e:  # noqa: BLE001 - no PortAudio / no devices is a state to show
            apis = []
            self.error = str(e)
            self.state.setText(f"no audio: {e}")
        for api in apis:
            self.hostapi.addItem(api["name"], api["name"])
        # start on a host API that has devices (PortAudio lists ALSA first even when
        # only JACK has any); a remembered choice below overrides this
        with_devices = [i for i, api in enumerate(apis) if api.get("devices")]
        if with_devices:
            self.hostapi.setCurrentIndex(with_devices[0])
        self.hostapi.blockSignals(False)
        self._fill_devices()
        missing = self.set_choice(keep)
        if missing:  # a device unplugged since it was chosen: the box shows another, and says so
            self.devices_gone.emit(self.missing_text(missing, "chosen before the rescan"))

    def _fill_devices(self) -> None:
        api = self.hostapi.currentData()
        for combo in (self.input, self.output):
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("system default", None)
        try:
            devices = engine.list_devices(hostapi=api) if api is not None else []
        except Exception as e:  # noqa: BLE001
            devices = []
            self.state.setText(f"cannot list devices: {e}")
        for dev in devices:
            name = dev.get("name", "?")
            for kind, combo in (("input", self.input), ("output", self.output)):
                if dev.get(f"max_{kind}_channels", 0) > 0:
                    mark = " (default)" if _is_default(dev, kind) else ""
                    combo.addItem(f"{name}{mark}", name)
        for combo in (self.input, self.output):
            combo.blockSignals(False)

    # --- choices --------------------------------------------------------------
    def choice(self) -> dict:
        """The selection as :class:`rtconv.live.StreamSettings` fields (devices, rate, block, channels, engine,
        device buffering)."""
        return {
            "hostapi": self.hostapi.currentData(),
            "input_device": self.input.currentData(),
            "output_device": self.output.currentData(),
            "sample_rate": self.rate.currentData(),
            "block_size": self.block.currentData(),
            "channels": self.channels.value(),
            "engine": self.engine.currentData(),
            "device_latency": self.buffering.currentData(),
        }

    @staticmethod
    def _find(combo: QtWidgets.QComboBox, value) -> int:
        """Index of ``value`` in ``combo``'s data: exact, else a unique name substring."""
        i = combo.findData(value)
        if i >= 0 or not isinstance(value, str):
            return i
        hits = [k for k in range(combo.count())
                if isinstance(combo.itemData(k), str) and value.lower() in combo.itemData(k).lower()]
        return hits[0] if len(hits) == 1 else -1

    def set_choice(self, c: dict) -> dict:
        """Show the choice ``c`` (:meth:`choice`'s keys, any of them); returns its host API and devices that are
        not listed now, key -> name (they keep the entry shown before: after a rescan, the system default)."""
        missing = {}
        if not c:
            return missing
        i = self._find(self.hostapi, c.get("hostapi"))
        if i >= 0 and i != self.hostapi.currentIndex():
            self.hostapi.setCurrentIndex(i)
        elif i < 0 and c.get("hostapi"):
            missing["hostapi"] = c["hostapi"]
        for combo, key in ((self.input, "input_device"), (self.output, "output_device")):
            j = self._find(combo, c.get(key))
            if j >= 0:
                combo.setCurrentIndex(j)
            elif c.get(key):
                missing[key] = c[key]
        for combo, key, unit in ((self.rate, "sample_rate", "Hz"), (self.block, "block_size", "samples")):
            j = combo.findData(c.get(key))
            if j < 0 and isinstance(c.get(key), int) and c[key] > 0:
                # a rate or block the list lacks (`rtconv gui -b 96`, accepted as rtconv live accepts it): shown
                # in its place in the list rather than dropped for the default without a word
                j = sum(1 for k in range(combo.count()) if combo.itemData(k) < c[key])
                combo.insertItem(j, f"{c[key]} {unit}", c[key])
            if j >= 0:
                combo.setCurrentIndex(j)
        if c.get("channels"):
            self.channels.setValue(int(c["channels"]))
        j = self.engine.findData(c.get("engine"))
        if j >= 0 and self.engine.model().item(j).isEnabled():  # an engine no longer installed stays torch
            self.engine.setCurrentIndex(j)
        j = self.buffering.findData(_buffering(c.get("device_latency")))
        if j >= 0:
            self.buffering.setCurrentIndex(j)
        return missing

    def missing_text(self, missing: dict, since: str = "remembered from the last run") -> str:
        """:meth:`restore`'s (or a rescan's) ``missing`` as one sentence naming each and what is shown instead."""
        api = self.hostapi.currentData()
        parts = []
        if "hostapi" in missing:
            instead = f"using {api!r} instead" if api else "there is no other to use"
            parts.append(f"the host API {missing['hostapi']!r} {since} is not there now; {instead}")
        for combo, key, kind in ((self.input, "input_device", "input"), (self.output, "output_device", "output")):
            if key in missing:
                parts.append(f"the {kind} device {missing[key]!r} {since} is not "
                             f"{f'on {api}' if api else 'listed'} now; using {self._shown(combo)} instead")
        one = len(parts) == 1
        if "hostapi" in missing:
            fix = "choose others in the Audio box, or start it, press Rescan and choose it"
        else:
            fix = (f"choose {'another' if one else 'others'} in the Audio box, or plug {'it' if one else 'them'} "
                   f"in, press Rescan and choose {'it' if one else 'them'}")
        return "; ".join(parts) + f"; {fix}."

    @staticmethod
    def _shown(combo: QtWidgets.QComboBox) -> str:
        """The device ``combo`` shows, by name: ``"the system default ('HDA Intel PCH: ALC257 Analog (hw:0,0)')"``."""
        name = combo.currentData()
        if name is not None:
            return repr(name)
        marked = [combo.itemData(k) for k in range(1, combo.count()) if combo.itemText(k).endswith(" (default)")]
        return f"the system default ({marked[0]!r})" if len(marked) == 1 else "the system default"

    def set_running(self, running: bool, text: str) -> None:
        self.start_button.setChecked(running)
        self.start_button.setText("Stop" if running else "Start")
        self.state.setText(text)

    def _start_clicked(self, checked: bool) -> None:
        # the window decides the final state; undo the toggle until it does
        self.start_button.setChecked(not checked)
        (self.start_requested if checked else self.stop_requested).emit()

    def save(self, settings) -> None:
        for k, v in self.choice().items():
            settings.setValue(f"audio/{k}", "" if v is None else v)

    def restore(self, settings, chosen: dict | None = None) -> dict:
        """Show the choice remembered in ``settings``, with ``chosen`` (the command line's) in place of its values;
        returns the remembered host API and devices that are not listed now, key -> name (:meth:`missing_text`)."""
        c = {}
        for k in ("hostapi", "input_device", "output_device", "engine", "device_latency"):
            v = settings.value(f"audio/{k}", "")
            c[k] = v or None
        for k in ("sample_rate", "block_size", "channels"):
            v = settings.value(f"audio/{k}", "")
            if k == "sample_rate" and v in ("", None):
                v = settings.value("audio/samplerate", "")  # the name before 2026-11-30
            if v not in ("", None):
                c[k] = int(v)
        c.update(chosen or {})
        return {k: v for k, v in self.set_choice(c).items() if k not in (chosen or {})}
