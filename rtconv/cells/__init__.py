"""Streaming cells: the compiled, stateful form of each layer that :class:`rtconv.Streamer` runs.

Map of the package:

* :mod:`.base` - the :class:`Cell` interface, the registry
  (:func:`register_cell`), the build :class:`Context`, the plan entries
  (:class:`LayerPlan`) and the structural cells (sequence, residual, mask,
  delay, activation);
* :mod:`.history` - the one history buffer every cell keeps its past in;
* :mod:`.conv` - sample-rate convolutions (direct, partitioned FFT,
  whole-block FFT) and their planners :func:`plan_conv`, :func:`plan_direct`;
* :mod:`.frames` - framed layers and the frame-rate cells (row-major
  convolutions, mask gates, pair powers, GRUs).

A layer's latency and receptive field are its own
(:func:`rtconv.layers.latency`, :func:`rtconv.layers.receptive_field`); the
compiler reads them, it does not recompute them.
"""

from .base import Cell, Context, LayerPlan, register_cell
from .conv import plan_conv, plan_direct
from .frames import numpy_root  # also registers the frame-rate layers' cells

__all__ = ["Cell", "Context", "LayerPlan", "register_cell", "plan_conv", "plan_direct", "numpy_root"]
