"""A model as one block of computation with explicit state: the step model.

:class:`StepModel` is a plain ``torch.nn.Module`` whose
``forward(audio_in, *states) -> (audio_out, *states_out)`` does one block of
exactly ``block_size`` frames.  Fed block after block, each ``S_out`` given
back as ``S`` and every state starting at zero, it computes what
:class:`rtconv.Streamer` computes for the same blocks (its ``process``; not
``flush``, see below).  It is what :mod:`rtconv.onnx.exporter` traces into an
ONNX file, so a host that knows nothing of rtconv can run the model.

Layout: ``audio_in`` is ``(block_size, channels)`` float32, frames-major like
sounddevice; ``audio_out`` is ``(block_size, out_channels)``, channel-major
like the streamer (a mono 1 -> 2 model on stereo gives L-low, L-high,
R-low, R-high).

States, per layer (names are the layer's path in the model, e.g.
``body.0.history``):

* a convolution keeps the last ``(taps-1)*dilation`` input samples (or
  frames), ``(batch, in_features, span)``;
* a ``Residual`` whose body delays (``padding="same"``) keeps its skip path's
  ``latency`` samples;
* a ``Framed`` layer keeps ``window-1`` input samples (a frame may straddle
  blocks) and the ``decoder.taps-1`` samples of overlap-add not yet emitted;
* a ``FrameGRU`` keeps its hidden vector ``(1, batch, hidden)``;
* ``time``: samples seen, saturating at the last sample that a start-up mask
  (``padding="same"`` layers, a framed decoder's first ``latency`` samples)
  still affects; present only when the model has such masks;
* ``<framed>.phase``: for a framed layer whose hop does not divide the block
  size, the position in the current hop (0 .. hop-1).  The number of frames
  a block completes then varies (128-frame blocks at hop 96 complete 1, 1,
  2, 1, 1, 2 ... frames), so the step model computes the most a block can
  complete, ``ceil(block / hop)``, and uses only those that are due: state
  updates and the overlap-add read the phase.  Every block size works.

Each layer's part of the step is a *node* built by the builder registered
for its type with :func:`rtconv.onnx.nodes.register_step` (the sample-rate
and structural layers in :mod:`rtconv.onnx.nodes`, the frame-rate ones in
:mod:`rtconv.onnx.frames`), the way the streamer's cells are registered
with :func:`rtconv.cells.register_cell`; a layer without one is refused.

For :class:`rtconv.Streamer`'s ``engine="onnx"`` (:mod:`rtconv.onnx.engine`)
two options change the graph: ``phase=True`` gives every framed layer a
phase state, so step models of different block sizes share their states, and
``controls=True`` makes each mask gate's floor an input instead of a constant.

Counters (``time``, ``phase``) and recurrent states are sanitised on input
(NaN to 0, clamped to their range): a host that starts them from uninitialised
memory gets a wrong start, not an error in every later block.

Not part of a step: :meth:`Streamer.flush` (a host feeds zeros instead; the
only difference is that a ``padding="same"`` layer's bias is not masked off
after the end of the signal) and the streamer's choice of convolution
algorithm (the step model convolves directly; the result is the same to float
rounding).  The input is scrubbed like the streamer's (NaN/Inf -> 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..models import Model
from ..streaming import stream_channels
from . import frames as _frames  # noqa: F401  registers the frame-rate layers' nodes
from .nodes import StepContext, _Flow

__all__ = ["StepModel"]


class StepModel(nn.Module):
    """One block of ``model`` with explicit state (see the module docstring).

    Parameters
    ----------
    model : rtconv.models.Model
        The model; its weights are copied (and later changes do not reach
        the step model).  A denoiser's attenuation limit is the one it has
        now.
    block_size : int
        Frames per block, fixed: the ONNX file's input shape.
    channels : int, optional
        Channels of the stream, with :class:`rtconv.Streamer`'s rule: a
        mono model runs once per channel, a multi-input model needs exactly
        its channel count.  Default: the model's input channels.
    phase : bool
        Give every framed layer a phase state, also when its hop divides
        ``block_size``: then step models of any block sizes have the same
        states and can take turns on one stream (the ``"onnx"`` engine).
    controls : bool
        Make each mask gate's floor (a denoiser's strength) an input named
        ``<path>.floor`` of shape ``(1,)``, read every block, instead of a
        constant; :attr:`control_names` lists them after the states.

    Attributes
    ----------
    state_names : list of str
        Input names of the states, in ``forward``'s order; outputs add ``_out``.
    state_shapes : list of tuple
        Their shapes.
    control_names : list of str
        With ``controls=True``: the floor inputs, after the states in ``forward``.
    exact_flush : bool
        Whether feeding ``latency`` zeros gives exactly :meth:`Streamer.flush`
        (not when a masked layer acts before the model's last delay).
    channels, out_channels, latency : int
        As :class:`rtconv.Streamer` reports them.
    """

    def __init__(self, model: Model, block_size: int, channels: int | None = None, *,
                 phase: bool = False, controls: bool = False) -> None:
        super().__init__()
        if not isinstance(model, Model):
            raise ConfigError(f"a step model needs an rtconv model, got {type(model).__name__}.")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ConfigError(f"block_size must be a positive number of frames, got {block_size!r}; e.g. 128.")
        f0 = model.in_channels
        channels = stream_channels(model, channels, hint=f"export it with --channels {f0}")
        self.n, self.channels = block_size, channels
        self.batch = channels if f0 == 1 else 1
        self.in_features = f0
        self.out_channels = self.batch * model.out_channels
        self.latency = model.latency
        ctx = StepContext(self.batch, block_size, phase, controls, mask=self.latency > 0)
        with torch.no_grad():
            self.body = ctx.build(model.body)
        self.control_names: list[str] = ctx.control_names
        self.cap = max(ctx.starts, default=0)  # `time` saturates here: no mask acts after it
        specs = ([("time", (1,))] if self.cap else []) + self.body.specs()
        names = [s[0] for s in specs]
        if len(set(names)) != len(names):  # pragma: no cover - paths are unique
            raise ConfigError(f"state names collide: {names!r}.")
        self.state_names = names
        self.state_shapes = [s[1] for s in specs]
        # ctx.ends: every mask's start, 0 included: where Streamer.flush's end masks would act
        self.exact_flush = all(s >= self.latency for s in ctx.ends)

    # -------------------------------------------------------------- running
    def initial_states(self) -> list[torch.Tensor]:
        """The zero states a stream starts from, in ``forward``'s order."""
        return [torch.zeros(s) for s in self.state_shapes]

    def initial_controls(self, model: Model) -> list[torch.Tensor]:
        """The control inputs as ``model`` has them now (its mask gates' floors)."""
        return [torch.tensor([model.get_submodule(k.removesuffix(".floor")).floor]) for k in self.control_names]

    def forward(self, audio_in: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.n
        states, controls = inputs[: len(self.state_names)], inputs[len(self.state_names) :]
        x = torch.where(torch.isfinite(audio_in), audio_in, torch.zeros_like(audio_in))  # as Streamer._check
        x = x.transpose(0, 1).reshape(self.batch, self.in_features, n)
        named = dict(zip(self.state_names, states, strict=True))
        t = None
        if self.cap:
            t = named["time"]
            t = torch.where(t == t, t, torch.zeros_like(t)).clamp(0.0, float(self.cap))
        flow = _Flow(named, t, dict(zip(self.control_names, controls, strict=True)))
        y = self.body(x, flow, n)
        if self.cap:
            flow.out["time"] = torch.clamp(t + n, max=float(self.cap))
        audio_out = y.reshape(self.out_channels, n).transpose(0, 1)
        return (audio_out, *(flow.out[k] for k in self.state_names))

    def extra_repr(self) -> str:
        return f"block_size={self.n}, channels={self.channels}, out_channels={self.out_channels}, states={len(self.state_names)}"

