"""Live audio: microphone -> model -> speakers, with hot model swap and recording.

API map
    :class:`StreamSettings` (``settings``): rate, channels, block size,
    devices, resampler, threads, engine, recording folder, in one frozen
    value; :class:`LocalSession` (``session``): the interface the CLI and the
    GUI hold ({start, stop, set_controls, set_switches, swap, watch, stats,
    monitor, recording_paths}), its twin :class:`host.RemoteSession` playing
    in the GUI's audio process (``host``, imported on demand);
    :class:`LiveProcessor` (``processor``): the callback's work, made of a
    :class:`ModelChain` (``chain``: checkpoint, streamer, resampler,
    latency, warm-up), a :class:`Mixer` (``mixer``: dry/wet, bypass, gain,
    crossfade, limiter) and a :class:`Monitor` (``monitor``: what displays
    read, shareable memory); :class:`LiveStream` (``stream``): the PortAudio
    duplex stream around a processor; :func:`list_devices`,
    :func:`list_hostapis`, :func:`find_device`, :func:`pick_sample_rate`
    (``devices``); :class:`Recorder` (``recorder``); :class:`ModelWatcher`
    (``watcher``); :class:`rtconv.resample.RateBridge` (the one resampling chain, shared with files); the speech gate
    :class:`gate.Gate` and :class:`gate.SpeechGate` (``gate``); realtime
    scheduling for the stream's helper threads (``realtime``); a
    PulseAudio/PipeWire virtual microphone :class:`virtual_mic.VirtualMic`
    (``virtual_mic``, imported on demand); the hand-off rings
    :class:`FrameRing`, :class:`DisplayRing` and the :class:`DelayLine`
    (``rings``).

The real-time contract
    The audio callback copies, computes and returns.  It never blocks on a
    lock, never waits for the GUI or any other thread, never does file I/O
    and never allocates more than small temporaries (NumPy/torch results
    of block size); buffers are preallocated when the stream starts.  It
    never raises: a model that throws or returns NaN/Inf makes that block
    pass dry, resets the model state, and bumps a counter that a monitor
    thread reports at most once per second.

    Each hand-off has one named primitive, and losses are counted:

    * model swap: a single-slot *mailbox* (``(sequence, chain)``) written by
      :meth:`LiveProcessor.request_swap` after loading, validating and
      warming the new model off the audio thread; the callback picks it up
      at a block boundary, runs it unheard beside the old one until its
      history is the stream's own (``ModelChain.warm_frames``: a model's
      reach; a recurrent one a quarter second at least), and crossfades
      (where the two models in one block would not keep up, the new one is
      heard at once and a warning says so);
    * parameters (bypass, wet, gain, limiter, the gate's settings): plain attributes read once per
      block and ramped across it (no zipper noise);
    * meters: a *latest-value slot* (a small preallocated array);
    * displays: an overwriting *ring buffer* (:class:`DisplayRing`), reads
      never block the writer, lapped frames counted;
    * recording: a *bounded lossless queue* (:class:`FrameRing`) drained by a
      writer thread; a full queue drops whole blocks and counts them.

Where the model runs (measured)
    In the PortAudio callback: latency is the model's plus the resampler's
    plus the device's.  A worker thread fed by a lock-free ring behind a few
    blocks of buffering was tried and removed: in CPython the callback and
    the worker share the interpreter lock, and every torch or NumPy call
    releases and re-takes it, so the callback ends up waiting for the
    worker anyway.  On the JACK dummy backend (48 kHz, 128-frame blocks and
    period, the lab denoiser behind soxr) ``rtconv bench live`` counted 7
    xruns in 20 s in the callback against 151 for the worker (3 blocks of
    safety, 8 ms more latency), and with a Python thread holding the GIL 25%
    of the time 1302 against 1075 plus 254 worker underruns.  Python work
    elsewhere in the process is the real threat to dropouts, which is why
    the GUI runs its streams in a separate audio process
    (:mod:`rtconv.live.host`: 15 dropouts with the window open against 433
    in-process, ``rtconv bench gui``).

Nothing here imports sounddevice at import time.
"""

from __future__ import annotations

import importlib

#: Where each public name lives; submodules import on first use, so ``rtconv live --help``
#: (which reads the settings' choices) does not pay for torch.
_WHERE = {
    "StreamSettings": "settings", "Session": "session", "LocalSession": "session",
    "LiveProcessor": "processor", "CONTROLS": "processor", "ModelChain": "chain", "Mixer": "mixer",
    "Monitor": "monitor", "LiveStream": "stream", "ModelWatcher": "watcher", "Recorder": "recorder",
    "RateBridge": "..resample", "FrameRing": "rings", "DisplayRing": "rings", "DelayLine": "rings",
    "list_devices": "devices", "list_hostapis": "devices", "find_device": "devices", "find_hostapi": "devices",
    "pick_sample_rate": "devices",
}


def __getattr__(name: str):
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'rtconv.live' has no attribute {name!r}")
    module = importlib.import_module(where if where.startswith(".") else f".{where}", __package__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


__all__ = list(_WHERE)
