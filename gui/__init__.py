"""The rtconv desktop app (PyQt6 + pyqtgraph); start it with ``rtconv gui``.

Module map
    :mod:`.app` (QApplication, window, ``--screenshot``), :mod:`.window` (the
    main window: wiring, the 30 fps display timer, the 1 Hz text timer,
    settings), :mod:`.engine` (the only module that talks to rtconv's
    checkpoints, files and live audio).
Panels
    :mod:`.audio_setup`, :mod:`.model_panel`, :mod:`.controls`,
    :mod:`.health`, :mod:`.meters`, :mod:`.spectrum`, :mod:`.spectrogram`,
    :mod:`.stems` (kernel stem plots and frequency responses),
    :mod:`.file_mode` (offline processing with A/B playback).
Maths
    :mod:`.dsp`: spectra, spectrogram columns, filter responses, log bands
    (NumPy/SciPy only, no Qt).

The audio thread never waits for the window: the window pulls snapshots
from the live session's monitor (display ring buffer and latest-value meters).
"""
