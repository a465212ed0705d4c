"""The desktop app: window, model card, kernel stems, file mode, screenshot.

Qt runs offscreen (tests/conftest.py); any Qt warning fails the test.
Live-audio tests (processor wiring, spectra from a JACK stream) are in
tests/test_gui_live.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt6", reason="the GUI needs PyQt6 (pip install 'rtconv[gui]')")

import rtconv  # noqa: E402
from rtconv import designs  # noqa: E402

# The offscreen platform plugin itself warns that it cannot propagate size
# hints; that line is about the test platform, every other warning fails.
OFFSCREEN_NOISE = "This plugin does not support propagateSizeHints"
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore(OFFSCREEN_NOISE)]


@pytest.fixture
def window(qtbot, tmp_path):
    from PyQt6 import QtCore

    from rtconv_gui.window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "gui.ini"), QtCore.QSettings.Format.IniFormat)
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def _save(model, path, **kw):
    return rtconv.save(model, path, sample_rate=kw.pop("sample_rate", 48000), **kw)


@pytest.fixture
def mimo_path(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    return _save(rtconv.MimoCNN(taps=[7, 5], features=[1, 3, 1]), tmp_path / "mimo.safetensors",
                 task="denoise", name="tiny mimo", metrics={"si_sdr_improvement_db": 7.25, "snr_db": 3.5})


def test_window_builds_with_every_panel(window):
    assert window.tabs.count() == 3
    assert [window.tabs.tabText(i) for i in range(3)] == ["Live", "Kernels", "File"]
    assert window.model is None
    assert window.kernels.placeholder.isVisibleTo(window.kernels)


def test_loading_a_checkpoint_fills_the_model_card(window, mimo_path):
    assert window.load_model(mimo_path)
    panel = window.model_panel
    assert panel.field("name") == "tiny mimo"
    assert panel.field("task") == "denoise"
    assert panel.field("architecture").startswith("mimo_cnn")
    assert panel.field("parameters") == f"{window.model.parameter_count():,}"
    assert panel.field("sample_rate") == "48000 Hz"
    # 7 + 5 taps causal: receptive field 1 + 6 + 4 = 11 samples
    assert panel.field("receptive_field") == f"11 samples ({1000 * 11 / 48000:.2f} ms)"
    assert panel.field("latency") == "0 samples (0.00 ms)"
    assert panel.field("metrics") == "SI-SDR +7.2 dB, SNR 3.5 dB"
    assert panel.field("file") == "mimo.safetensors"


def test_a_nested_test_report_shows_its_headline_numbers_and_keeps_the_rest_in_the_tooltip(window, tmp_path):
    report = {"examples": 40, "outputs": {"speech": {"si_sdr_improvement_db": 3.25, "input_snr_db": 1.0,
                                                     "buckets": [{"bucket": "< 0 dB", "count": 3}],
                                                     "per_noise": {"hum": {"si_sdr_improvement_db": -9.5}}}}}
    path = _save(rtconv.MimoCNN(taps=[3], features=[1, 1]), tmp_path / "r.safetensors", metrics={"test": report})
    assert window.load_model(path)
    text = window.model_panel.field("metrics")
    assert text == "test: SI-SDR +3.2 dB on 40 examples"  # the headline; breakdowns and inputs only in the tooltip
    tip = window.model_panel.metrics.toolTip()
    assert "per_noise" in tip and "-9.5" in tip and "buckets" in tip


def test_the_model_card_reads_as_sentences_without_raw_keys_or_unitless_negative_losses(window, tmp_path):
    metrics = {"train_loss": -11.9, "val_loss": -11.2, "test_loss": -10.7, "best_epoch": 10, "epochs_run": 10,
               "loss": "si_sdr+sc", "train_seconds": 888,
               "test": {"examples": 48, "loss": -10.7, "mse_reduction": 2.44,
                        "outputs": {"speech": {"snr_improvement_db": 4.97, "si_sdr_improvement_db": 4.81,
                                               "input_snr_db": 2.0, "buckets": [{"bucket": "< 0 dB", "count": 3}]}}}}
    path = _save(rtconv.MimoCNN(taps=[3], features=[1, 1]), tmp_path / "d.safetensors", metrics=metrics)
    assert window.load_model(path)
    text = window.model_panel.field("metrics")
    assert text.splitlines() == ["trained 10 epochs (best 10), 15 min, loss si_sdr+sc",
                                 "test: SI-SDR +4.8 dB, SNR +5.0 dB on 48 examples"]
    assert "_loss" not in text and "-11" not in text and "mse_reduction" not in text
    tip = window.model_panel.metrics.toolTip()
    assert "train_loss" in tip and "-11.9" in tip and "mse_reduction" in tip


@pytest.mark.parametrize(("metrics", "expected"), [
    ({"train_loss": 0.1, "test_loss": 0.02, "loss": "mse"}, "test loss (mse): 0.02"),
    ({"test": {"examples": 500, "outputs": {"low": {"si_sdr_improvement_db": 35.7},
                                            "high": {"si_sdr_improvement_db": 22.1}}}},
     "test: low SI-SDR +35.7 dB; high SI-SDR +22.1 dB on 500 examples"),
    ({"test_auc": 0.906, "test_accuracy": 0.839, "test": {"examples": 128, "kind": "vad", "rows": []}},
     "test: AUC 0.906, accuracy 84 % on 128 examples"),
    ({"test": {"examples": 8, "mse_reduction": 2.44}}, "test: MSE 2.44× lower on 8 examples"),
    ({}, ""),
])
def test_metric_lines_name_each_number_with_its_unit(metrics, expected):
    from rtconv_gui.model_panel import metric_lines

    assert "\n".join(metric_lines(metrics)) == expected


def test_the_health_panel_is_visible_without_scrolling_in_a_1500_by_900_window(window, qtbot):
    from PyQt6 import QtCore, QtWidgets

    from gui import engine

    path = engine.default_model_path()  # the shipped denoiser: the tallest card and every control row
    if path is None:
        pytest.skip("no model in models/")
    assert window.load_model(path)
    window.health.show_stats({"input_overflows": 3, "output_underflows": 4, "model_errors": 0, "blocks": 100,
                              "block_ms": {"median": 0.594, "p99": 1.624, "max": 2.213, "budget": 2.667},
                              "cpu_load": 0.25, "sample_rate": 48000,
                              "latency": {"model_ms": 3.98, "gate_ms": 6.0, "device_out_ms": 5.33,
                                          "total_ms": 15.31}}, 30.0, 12)
    window.resize(1500, 900)
    qtbot.waitUntil(lambda: window.height() == 900)
    QtWidgets.QApplication.processEvents()
    scroll = window.health.parentWidget()
    while not isinstance(scroll, QtWidgets.QScrollArea):
        scroll = scroll.parentWidget()
    viewport = scroll.viewport()
    box = QtCore.QRect(window.health.mapTo(viewport, QtCore.QPoint(0, 0)), window.health.size())
    assert viewport.rect().contains(box), (box, viewport.rect())


@pytest.mark.parametrize("offset,text", [
    (0.0071, "0 failed blocks; input DC offset -43 dBFS removed"),
    (1e-5, "0 failed blocks"),  # below -60 dBFS: not worth a word
    (None, "0 failed blocks"),  # a filter: its input is not touched
])
def test_health_tells_a_dc_offset_the_stream_removes_beside_the_model_errors(window, offset, text):
    window.health.show_stats({"blocks": 10, "block_ms": {"median": 0.5, "p99": 0.9, "max": 1.0, "budget": 2.667},
                              "dc_offset": offset, "latency": {"model_ms": 3.98, "total_ms": 3.98}}, 30.0)
    assert window.health.values["errors"].text() == text


@pytest.mark.parametrize("gain,text", [
    (-9.4, "0 failed blocks; loud speech: the model hears it 9 dB quieter"),
    (-0.5, "0 failed blocks"),  # less than a dB: not worth a word
    (None, "0 failed blocks"),  # no guard (a filter, --keep-level)
])
def test_health_tells_when_the_level_guard_lowers_loud_speech(window, gain, text):
    window.health.show_stats({"blocks": 10, "block_ms": {"median": 0.5, "p99": 0.9, "max": 1.0, "budget": 2.667},
                              "level_gain_db": gain, "latency": {"model_ms": 3.98, "total_ms": 3.98}}, 30.0)
    assert window.health.values["errors"].text() == text


def test_stems_equal_the_checkpoint_taps_in_impulse_response_order(window, mimo_path):
    window.load_model(mimo_path)
    kernels = [layer.kernel for layer in rtconv.load(mimo_path).conv_layers()]
    views = window.kernels.layer_views
    assert len(views) == 2
    for view, k in zip(views, kernels):
        out_f, in_f, taps = k.shape
        for f in range(in_f):
            for g in range(out_f):
                x, y = view.stem_data(f, g)
                np.testing.assert_array_equal(x, np.arange(taps))  # tap 0 at lag 0
                np.testing.assert_allclose(y, k[g, f], rtol=0, atol=0)


@pytest.mark.parametrize("taps", [[1], [3], [2, 2]])
def test_an_asymmetric_fir_is_drawn_tap_zero_first(window, tmp_path, taps):
    kernel = np.array([1.0, 0.5, -0.25, 0.125, 0.0, -1.0])[: sum(taps) + 1]
    path = _save(rtconv.FIR(kernel), tmp_path / "fir.safetensors")
    window.load_model(path)
    x, y = window.kernels.layer_views[0].stem_data(0, 0)
    np.testing.assert_allclose(y, kernel)
    np.testing.assert_array_equal(x, np.arange(kernel.size))


def test_a_large_layer_gets_a_heat_map_and_a_channel_picker(window, tmp_path):
    model = rtconv.DilatedCNN(channels=6, layers=3, taps=3)
    path = _save(model, tmp_path / "tcn.safetensors")
    window.load_model(path)
    loaded = rtconv.load(path)
    view = window.kernels.layer_views[1]  # 6x6 filters, dilation 2
    assert not view.grid
    k = loaded.conv_layers()[1].kernel
    x, y = view.stem_data(4, 2)
    np.testing.assert_allclose(y, k[2, 4])
    np.testing.assert_array_equal(x, np.arange(3) * 2)  # lags in samples for dilation 2
    image = view.heat_image  # rows: output channels; columns: input channel × tap
    assert image.shape == (6, 18)
    np.testing.assert_allclose(image[2, 4 * 3 : 5 * 3], k[2, 4])


@pytest.mark.parametrize(("taps", "as_line"), [(64, False), (65, True), (192, True), (2000, True)])
def test_a_long_kernel_is_drawn_as_one_line_through_its_taps_not_a_wall_of_stems(window, tmp_path, taps, as_line):
    kernel = np.random.default_rng(taps).standard_normal(taps) * np.hanning(taps)
    window.load_model(_save(rtconv.FIR(kernel), tmp_path / "long.safetensors"))
    view = window.kernels.layer_views[0]
    cell = view.cells[(0, 0)]
    assert cell.line.isVisible() == as_line
    assert cell.stems.isVisible() == cell.tips.isVisible() == (not as_line)
    x, y = view.stem_data(0, 0)
    np.testing.assert_allclose(y, kernel)
    np.testing.assert_array_equal(x, np.arange(taps))


def test_frequency_responses_are_labelled_in_hz_and_a_flat_one_is_not_magnified(window, tmp_path):
    window.load_model(_save(rtconv.FIR(np.array([0.5, 1e-4])), tmp_path / "flat.safetensors"))
    cell = window.kernels.layer_views[0].cells[(0, 0)]
    assert [label for _, label in cell.freq_ticks] == ["100 Hz", "1 kHz", "10 kHz"]
    low, high = cell.resp_plot.viewRange()[1]
    assert high - low >= 40  # a 0.002 dB ripple is not drawn across the whole plot
    assert low < 20 * np.log10(0.5) < high


def test_the_response_ticks_of_a_frame_rate_layer_fit_its_rate():
    from rtconv_gui.stems import hz_ticks

    assert [label for _, label in hz_ticks(0.5, 250.0)] == ["1 Hz", "10 Hz", "100 Hz"]
    assert hz_ticks(47.0, 24000.0) == [(2.0, "100 Hz"), (3.0, "1 kHz"), (4.0, "10 kHz")]


def test_swapping_to_a_same_shaped_model_updates_stems_in_place(window, tmp_path):
    torch = pytest.importorskip("torch")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(_save(rtconv.MimoCNN(taps=[4, 4], features=[1, 2, 1]), tmp_path / f"m{seed}.safetensors"))
    window.load_model(paths[0])
    before = window.kernels.rebuilds
    items = window.kernels.layer_views[0].cells[(0, 1)].stems
    window.load_model(paths[1])
    assert window.kernels.rebuilds == before
    assert window.kernels.layer_views[0].cells[(0, 1)].stems is items
    np.testing.assert_allclose(window.kernels.layer_views[0].stem_data(0, 1)[1],
                               rtconv.load(paths[1]).conv_layers()[0].kernel[1, 0])


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_a_failing_model_load_shows_why_and_keeps_the_old_model(window, mimo_path, tmp_path, content):
    window.load_model(mimo_path)
    old = window.model
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(content)
    assert not window.load_model(bad)
    assert window.model is old
    assert window.model_panel.field("name") == "tiny mimo"
    assert window.banner.isVisibleTo(window)
    text = window.banner.text()
    assert text.startswith("could not load the model: ") and "broken.safetensors" in text


def test_a_missing_model_file_is_reported_by_name(window, tmp_path):
    assert not window.load_model(tmp_path / "nowhere.safetensors")
    assert "nowhere.safetensors" in window.banner.text()
    assert window.model is None


def test_the_models_folder_is_listed_and_choosing_one_loads_it(window, qtbot, tmp_path, monkeypatch, mimo_path):
    folder = tmp_path / "models"
    folder.mkdir()
    _save(designs.lowpass(4000, 31, 48000), folder / "low.safetensors", name="lowpass 4k", task="filter")
    monkeypatch.setenv("RTCONV_MODELS", str(folder))
    panel = window.model_panel
    panel.refresh_list()
    labels = [panel.choice.itemText(i) for i in range(panel.choice.count())]
    assert "lowpass 4k (filter)" in labels
    with qtbot.waitSignal(panel.load_requested):
        panel.choice.activated.emit(labels.index("lowpass 4k (filter)"))
    assert window.model_panel.field("name") == "lowpass 4k"


def test_spectrum_panel_shows_what_the_model_removes(qtbot):
    from rtconv_gui.spectrum import SpectrumPanel

    panel = SpectrumPanel(fft_size=1024)
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1024).astype(np.float32) * 0.1
    panel.update_audio(x, 0.5 * x, dt=1 / 30)
    curves = panel.curves()
    f, diff = curves["difference"]
    assert f[0] > 0  # no DC bin on a log axis
    np.testing.assert_allclose(diff, 20 * np.log10(0.5), atol=1e-3)
    assert panel.updates == 1


def test_the_difference_curve_has_its_own_db_change_axis_linked_to_the_spectra_in_frequency(qtbot):
    import pyqtgraph as pg

    from rtconv_gui.spectrum import SpectrumPanel

    panel = SpectrumPanel(fft_size=1024)
    qtbot.addWidget(panel)
    panel.show()
    spectra, diff = panel.plot.getPlotItem(), panel.diff_plot.getPlotItem()
    assert panel.curve_diff not in spectra.listDataItems()  # not on the dBFS axis any more
    assert panel.curve_diff in diff.listDataItems()
    lo, hi = diff.viewRange()[1]
    assert (lo, hi) == (-40, 10)
    assert [label.text for _, label in diff.legend.items] == ["output − input (dB)"]
    assert "output − input" not in [label.text for _, label in spectra.legend.items]
    assert diff.getViewBox().linkedView(pg.ViewBox.XAxis) is spectra.getViewBox()
    panel.set_sample_rate(16000)
    np.testing.assert_allclose(diff.viewRange()[0], spectra.viewRange()[0])
    panel.show_diff.setChecked(False)
    assert not panel.diff_plot.isVisible()
    panel.show_diff.setChecked(True)
    assert panel.diff_plot.isVisible()


def test_the_spectrograms_have_a_colour_scale_in_db_that_follows_the_range_boxes(window):
    panel = window.spectrogram
    bar = panel.colour_bar
    assert bar.isVisible() and "dB" in bar.getAxis("left").labelText
    assert tuple(bar.levels()) == (-120, 10)  # the range boxes' defaults
    window.spectrum.db_min.setValue(-90)
    window.spectrum.db_max.setValue(-20)
    assert tuple(bar.levels()) == (-90, -20) == panel.levels
    lut = panel.inp.image.lut
    np.testing.assert_array_equal(bar.colorMap().getLookupTable(nPts=len(lut)), lut)  # the images' colours


@pytest.mark.parametrize("n", [1, 7, 4096, 10000])
def test_spectrogram_scrolls_one_column_per_frame_for_any_snapshot_size(qtbot, n):
    from rtconv_gui.spectrogram import SpectrogramPanel

    panel = SpectrogramPanel(fft_size=256, columns=10)
    qtbot.addWidget(panel)
    x = np.ones(n, np.float32)
    panel.update_audio(x, np.zeros(n, np.float32))
    panel.update_audio(np.zeros(n, np.float32), x)
    assert panel.inp.data[-2].max() > -150 and panel.inp.data[-1].max() == -160
    assert panel.out.data[-1].max() > -150 and panel.out.data[-2].max() == -160


@pytest.mark.parametrize("late_frames", [0, 1, 3, 50])
def test_spectrogram_columns_follow_audio_time_not_display_frames(qtbot, late_frames):
    from rtconv_gui.spectrogram import SpectrogramPanel

    panel = SpectrogramPanel(fft_size=256, columns=20)
    qtbot.addWidget(panel)
    panel.set_sample_rate(48000, frame_rate=30)
    hop = panel.hop
    assert hop == 1600
    # a display that comes late owes one column per hop of audio that arrived
    x = np.ones(hop * 60, np.float32)
    added = panel.update_audio(x, x, new_frames=hop * late_frames + hop // 2)
    assert added == min(late_frames, 20)
    assert panel.update_audio(x, x, new_frames=hop // 2) == 1  # the remainders add up
    filled = (panel.inp.data.max(axis=1) > -150).sum()  # columns start at silence (-160 dB)
    assert filled == min(late_frames + 1, 20)


def _open_noise(window, tmp_path, seed):
    """One second of white noise at 16 kHz written to a file and opened in the window's file mode."""
    sf = pytest.importorskip("soundfile")
    audio = (0.1 * np.random.default_rng(seed).standard_normal((16000, 1))).astype(np.float32)
    src = tmp_path / "noisy.wav"
    sf.write(src, audio, 16000, subtype="FLOAT")
    panel = window.file_panel
    assert panel.open(src)
    return audio, panel


def test_file_mode_processes_compares_and_saves(window, qtbot, tmp_path):
    sf = pytest.importorskip("soundfile")
    model = designs.lowpass(1000, 63, 16000)
    window.set_model(model)
    audio, panel = _open_noise(window, tmp_path, 3)
    panel.process()
    assert panel.wait(20000)
    expected = np.convolve(audio[:, 0], model.kernel)[:16000]  # causal FIR: y[n] = sum_k h[k] x[n-k]
    np.testing.assert_allclose(panel.processed[:, 0], expected, atol=1e-5)
    f, db = panel.curve_d.xData, panel.curve_d.yData
    assert db[f > 4000].mean() < -30  # the low-pass removed the highs
    assert panel.save(tmp_path / "out.wav")
    back, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 16000
    np.testing.assert_array_equal(back, panel.processed)


def test_file_mode_runs_a_denoiser_both_ways_and_a_filter_one_way(window, qtbot, tmp_path):
    from rtconv.checkpoint import resolve
    from rtconv.files import process_array

    audio, panel = _open_noise(window, tmp_path, 4)
    denoiser = rtconv.load(resolve("denoiser"))
    window.set_model(denoiser)
    assert panel.both.isEnabled()
    panel.both.setChecked(True)
    panel.process()
    assert panel.wait(60000)
    np.testing.assert_allclose(panel.processed, process_array(audio, 16000, denoiser, both_directions=True),
                               atol=1e-6)
    assert "in both directions" in panel.info.text()
    fir = designs.lowpass(1000, 63, 16000)
    window.set_model(fir)  # the box stays ticked but does not apply: a filter runs one way
    assert not panel.both.isEnabled() and "For denoisers" in panel.both.toolTip()
    panel.process()
    assert panel.wait(20000)
    np.testing.assert_allclose(panel.processed[:, 0], np.convolve(audio[:, 0], fir.kernel)[:16000], atol=1e-5)
    assert "in both directions" not in panel.info.text()


def test_file_mode_reports_an_unreadable_recording(window, qtbot, tmp_path):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    with qtbot.waitSignal(window.file_panel.message) as sig:
        assert not window.file_panel.open(bad)
    assert sig.args[1] is True and "noise.wav" in sig.args[0]
    assert "noise.wav" in window.banner.text()


def test_settings_are_remembered_between_runs(qtbot, tmp_path, mimo_path):
    from PyQt6 import QtCore

    from rtconv_gui.window import MainWindow

    ini = str(tmp_path / "gui.ini")
    first = MainWindow(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.load_model(mimo_path)
    first.audio.block.setCurrentIndex(first.audio.block.findData(256))
    onnx = first.audio.engine.findData("onnx")
    if first.audio.engine.model().item(onnx).isEnabled():  # the test extra installs onnxruntime
        first.audio.engine.setCurrentIndex(onnx)
    first.audio.buffering.setCurrentIndex(first.audio.buffering.findData(0.02))
    first.controls.wet.setValue(40)
    first.controls.gain.setValue(-6.0)
    first.spectrum.tau.setValue(1.5)
    first.close()
    second = MainWindow(QtCore.QSettings(ini, QtCore.QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.audio.choice()["block_size"] == 256
    assert second.audio.choice()["engine"] == ("onnx" if second.audio.engine.model().item(onnx).isEnabled()
                                               else "torch")
    assert second.audio.choice()["device_latency"] == 0.02
    assert second.controls.wet.value() == 40
    assert second.controls.gain.value() == -6.0
    assert second.spectrum.tau.value() == 1.5
    assert second.last_model() == str(mimo_path)
    second.shutdown()


def test_screenshot_writes_a_png_of_the_window(window, tmp_path, mimo_path):
    from PyQt6 import QtGui

    from rtconv_gui.app import save_screenshot

    window.load_model(mimo_path)
    out = save_screenshot(window, tmp_path / "shots" / "window.png")
    image = QtGui.QImage(str(out))
    assert not image.isNull()
    assert image.width() >= 800 and image.height() >= 600


def test_the_readme_screenshot_shows_no_machine_paths(window, mimo_path):
    from rtconv_gui.screenshot import shown_paths, tidy

    window.load_model(mimo_path)  # from an absolute temporary folder
    window.controls.record_dir.setText(str(mimo_path.parent / "recordings"))
    assert shown_paths(window) == [str(mimo_path.parent / "recordings")]  # the check sees one
    tidy(window)
    assert window.controls.record_dir.text() == "recordings"
    assert shown_paths(window) == []
    assert window.model_panel.field("file") == "mimo.safetensors"


@pytest.mark.parametrize(("text", "is_path"), [
    ("/work/main/recordings", True), ("/tmp", True), ("~/x.wav", True), ("C:\\Users", True),
    ("5 frames/s", False), ("median / p99 / max", False), ("denoiser", False), ("recordings", False),
    ("<span style='color:inherit'>0.5 / 1.5 ms</span>", False),
])
def test_the_path_check_tells_paths_from_slashes_in_words(text, is_path):
    from rtconv_gui.screenshot import _ABSOLUTE

    assert bool(_ABSOLUTE.search(text)) == is_path


def test_frame_rate_layers_of_a_framed_denoiser_are_labelled_in_frames(window, tmp_path):
    denoiser = pytest.importorskip("rtconv.denoiser")
    model = denoiser.ConvDenoiser(window=16, hop=8, channels=4, blocks=1, taps=3)
    path = _save(model, tmp_path / "den.safetensors", task="denoise")
    window.load_model(path)
    views = window.kernels.layer_views
    assert len(views) == len(model.conv_layers())
    assert (views[0].unit, views[0].sample_rate) == ("samples", 48000.0)  # the analysis filterbank
    assert (views[1].unit, views[1].sample_rate) == ("frames", 6000.0)  # the mask network, every hop
    assert views[-1].unit == "samples"
    k = rtconv.load(path).conv_layers()[0].kernel
    np.testing.assert_allclose(views[0].stem_data(0, 5)[1], k[5, 0])


def test_the_display_backs_off_while_audio_drops_out_and_creeps_back(window):
    stats = {"input_overflows": 0, "output_underflows": 0}
    window.adapt_display_rate(stats)
    assert window.display_rate == 30
    for expected in (15, 7.5, 5, 5):  # a dropout in every second: halve, floor at 5 fps
        stats = {"input_overflows": stats["input_overflows"] + 1, "output_underflows": 0}
        window.adapt_display_rate(stats)
        assert window.display_rate == expected
        assert window.timer.interval() == int(1000 / expected)
    for expected in (7, 9):  # clean seconds: +2 fps each
        window.adapt_display_rate(stats)
        assert window.display_rate == expected
    window.spectrum.adaptive.setChecked(False)
    window.adapt_display_rate({"input_overflows": 99, "output_underflows": 0})
    assert window.display_rate == 30  # the user's rate, whatever happens


def test_the_meter_readout_shows_silence_as_minus_infinity_not_minus_200(qtbot):
    from rtconv_gui.meters import MetersPanel

    panel = MetersPanel()
    qtbot.addWidget(panel)
    silence = {"in_peak_db": [-200.0], "in_rms_db": [-200.0], "out_peak_db": [-200.0], "out_rms_db": [-200.0],
               "in_clip": False, "out_limited": False}
    panel.update_meters(silence)
    panel.update_text()
    text = panel.readout.text()
    assert "-∞" in text and "200" not in text, text
    panel.update_meters({**silence, "in_peak_db": [-6.0], "in_rms_db": [-18.5]})
    panel.update_text()
    assert "-18.5" in panel.readout.text()


def test_the_level_meters_number_their_ticks_in_db_beside_them(qtbot):
    from PyQt6 import QtCore

    from rtconv_gui.meters import MetersPanel

    panel = MetersPanel()
    qtbot.addWidget(panel)
    panel.resize(140, 400)
    panel.show()
    qtbot.waitExposed(panel)
    scale = panel.scale
    assert scale.isVisible() and scale.geometry().right() < panel.meter_in.geometry().left()
    labels = scale.labels()
    assert [text for text, _ in labels] == ["0", "-6", "-12", "-24", "-48"]
    for (text, y), db in zip(labels, (0, -6, -12, -24, -48)):
        at = scale.mapTo(panel, QtCore.QPoint(0, y)).y()
        assert at == panel.meter_in.mapTo(panel, QtCore.QPoint(0, panel.meter_in.tick_y(db))).y(), text
    assert labels[0][1] < labels[-1][1]  # 0 dBFS at the top


def test_banners_speak_of_the_windows_controls_not_command_line_options(window):
    """A device error written for the CLI ('try --sample-rate', 'run `rtconv devices`') reads as GUI advice."""
    from rtconv.errors import DeviceError

    msg = str(DeviceError("devices 0: 'system' / 0: 'system' refuse 1 channel(s) at 44100 Hz (Invalid sample "
                          "rate); their default rate is 48000 Hz, try --sample-rate with it or run `rtconv devices`."))
    window.show_message(msg, True)
    shown = window.banner.text()
    assert "--" not in shown and "rtconv devices" not in shown, shown
    assert "Rate box" in shown and "Rescan" in shown and "48000 Hz" in shown


def test_the_voice_meter_shows_with_a_detector_and_stays_inside_the_window(window):
    from PyQt6 import QtCore, QtGui

    m = window.meters
    m.update_speech(None)
    assert not m.meter_speech.isVisibleTo(window)
    m.update_speech({"probability": 0.8, "gain_db": 0.0, "open": True, "on": True, "threshold": 0.5})
    assert m.meter_speech.isVisibleTo(window) and m.meter_speech.gate_open
    window.resize(1500, 900)
    QtGui.QGuiApplication.processEvents()
    # the whole meter column stays inside the window
    right = m.meter_speech.mapTo(window, QtCore.QPoint(m.meter_speech.width(), 0)).x()
    assert right <= window.width(), (right, window.width())
    m.update_text()
    assert "voice 0.80" in m.readout.text() and "gate open" in m.readout.text()


def test_the_watch_box_reloads_a_rewritten_checkpoint_with_the_same_watcher_as_rtconv_live(window, qtbot, tmp_path):
    path = tmp_path / "trained.safetensors"
    rtconv.save(rtconv.FIR(np.array([1.0, 0.5])), path, name="first")
    assert window.load_model(path)
    window.model_panel.watch.setChecked(True)
    qtbot.wait(700)  # the watcher has seen the version that is loaded: it is not new
    rtconv.save(rtconv.FIR(np.array([0.25])), path, name="second")  # the trainer writes a new version
    qtbot.waitUntil(lambda: window.model_panel.field("name") == "second", timeout=10000)
    assert window.banner.text() == "reloaded trained.safetensors after it changed"
    window.model_panel.watch.setChecked(False)
    rtconv.save(rtconv.FIR(np.array([0.5])), path, name="third")
    qtbot.wait(1500)
    assert window.model_panel.field("name") == "second"  # unwatched: left alone


def test_the_engine_chosen_in_the_audio_box_is_the_one_the_session_runs(window, mimo_path):
    pytest.importorskip("onnxruntime", reason="the onnx engine needs onnxruntime (the onnx extra)")
    from rtconv_gui import engine

    box = window.audio
    assert [box.engine.itemData(i) for i in range(box.engine.count())] == ["torch", "onnx"]
    assert box.choice()["engine"] == "torch"  # the default
    box.engine.setCurrentIndex(box.engine.findData("onnx"))
    settings = engine.stream_settings(box.choice())
    assert settings.engine == "onnx"
    session = engine.make_session(str(mimo_path), settings)  # in this process, not started
    try:
        x = (0.1 * np.random.default_rng(0).standard_normal((128, 1))).astype(np.float32)
        y = session.processor.process(x)
        assert y.shape == x.shape and np.isfinite(y).all()
        assert session.processor.settings.engine == "onnx"
    finally:
        session.close()


def test_the_buffering_chosen_in_the_audio_box_reaches_the_stream_settings(window):
    from rtconv_gui import engine

    box = window.audio
    assert [box.buffering.itemData(i) for i in range(box.buffering.count())] == ["low", 0.02, 0.05, "high"]
    assert engine.stream_settings(box.choice()).device_latency == "low"  # the default, as rtconv live's
    for value in (0.05, "high"):
        box.buffering.setCurrentIndex(box.buffering.findData(value))
        assert engine.stream_settings(box.choice()).device_latency == value
    box.set_choice({"device_latency": "0.02"})  # QSettings gives text back
    assert box.choice()["device_latency"] == 0.02
    box.set_choice({"device_latency": "7"})  # not one of the choices: unchanged
    assert box.choice()["device_latency"] == 0.02


def test_an_engine_that_is_not_installed_is_listed_greyed_out_with_what_to_install(qtbot, monkeypatch):
    from rtconv_gui import audio_setup, engine

    why = 'needs onnxruntime: pip install -c constraints.txt -e ".[onnx]"'
    monkeypatch.setattr(engine, "engines", lambda: {"torch": None, "onnx": why})
    box = audio_setup.AudioSetup()
    qtbot.addWidget(box)
    item = box.engine.model().item(box.engine.findData("onnx"))
    assert not item.isEnabled() and item.toolTip() == why
    box.set_choice({"engine": "onnx"})  # e.g. remembered from a run when it was installed
    assert box.choice()["engine"] == "torch"


@pytest.mark.parametrize("model_rate", [16000, 48000])
@pytest.mark.parametrize("device_rate", [44100, 48000])
def test_the_model_card_gives_latency_and_receptive_field_in_ms_at_the_models_own_rate(window, tmp_path, model_rate,
                                                                                      device_rate):
    """The 48 kHz denoiser's 191 samples showed 4.33 ms on a 44.1 kHz device (divided by the device's rate); the
    model runs at its own rate, resampled, and the resampler's latency is its own number (see the live tests)."""
    denoiser = pytest.importorskip("rtconv.denoiser")
    path = _save(denoiser.ConvDenoiser(window=16, hop=8, channels=4, blocks=1), tmp_path / "d.safetensors",
                 sample_rate=model_rate, task="denoise")
    window.audio.set_choice({"sample_rate": device_rate})
    assert window.audio.choice()["sample_rate"] == device_rate
    assert window.load_model(path)
    panel = window.model_panel
    assert panel.field("latency") == f"15 samples ({1000 * 15 / model_rate:.2f} ms)"
    assert panel.field("receptive_field") == f"32 samples ({1000 * 32 / model_rate:.2f} ms)"
    assert panel.field("sample_rate") == f"{model_rate} Hz"
    # the kernels' frequency responses are at the rates they run at too: the model's, and its frame rate inside
    assert [(v.sample_rate, v.unit) for v in window.kernels.layer_views] == \
        [(model_rate, "samples")] + [(model_rate / 8, "frames")] * 4 + [(model_rate, "samples")]


def test_a_model_that_states_no_rate_is_described_at_the_rate_it_runs_at(window, tmp_path):
    path = rtconv.save(rtconv.MimoCNN(taps=[7, 5], features=[1, 3, 1]), tmp_path / "m.safetensors")
    window.audio.set_choice({"sample_rate": 44100})
    assert window.load_model(path)
    assert window.model.sample_rate is None
    assert window.model_panel.field("receptive_field") == f"11 samples ({1000 * 11 / 44100:.2f} ms)"
