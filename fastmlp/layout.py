"""Where each parameter lives: every weight matrix and bias as a view into one flat buffer.

A network with layers ``(d, h_1, ..., h_{L-1}, m)`` has ``L`` weight matrices and biases,
stored one after the other in a single 1-D array::

    theta = [ W1 (h_1, d) | b1 (h_1,) | W2 (h_2, h_1) | b2 | ... | WL (m, h_{L-1}) | bL ]

each matrix row-major. ``model.params["W2"]`` is a view into that buffer, so copying,
restoring, checking finiteness and keeping optimizer state are one operation each on the
buffer, and a compiled kernel has one signature whatever the depth.
"""

from __future__ import annotations

import numpy as np


class Layout:
    """The flat-buffer layout of one network shape ``layers``.

    Attributes
    ----------
    layers : tuple of int
    n_layers : int, the number L of weight matrices
    keys : ("W1", "b1", ..., "WL", "bL")
    shapes : {key: shape}
    slices : {key: slice of the flat buffer}
    n_params : int, ``Σ_l layers[l] (layers[l-1] + 1)``
    """

    def __init__(self, layers):
        self.layers = tuple(int(n) for n in layers)
        self.n_layers = len(self.layers) - 1
        self.keys, self.shapes, self.slices = (), {}, {}
        start = 0
        for l, (n_in, n_out) in enumerate(zip(self.layers[:-1], self.layers[1:]), start=1):
            for key, shape in ((f"W{l}", (n_out, n_in)), (f"b{l}", (n_out,))):
                size = int(np.prod(shape))
                self.keys += (key,)
                self.shapes[key] = shape
                self.slices[key] = slice(start, start + size)
                start += size
        self.n_params = start

    def __eq__(self, other):
        return isinstance(other, Layout) and other.layers == self.layers

    def __hash__(self):
        return hash(self.layers)

    def __repr__(self):
        return f"Layout({self.layers})"

    @property
    def weight_keys(self):
        return self.keys[0::2]

    def views(self, flat):
        """``{key: view}`` of a flat buffer of ``n_params`` entries (writing a view writes it)."""
        return {key: flat[self.slices[key]].reshape(self.shapes[key]) for key in self.keys}

    def pairs(self, flat):
        """``[(W1, b1), ..., (WL, bL)]``, views into ``flat``, in layer order."""
        views = self.views(flat)
        return [(views[f"W{l}"], views[f"b{l}"]) for l in range(1, self.n_layers + 1)]

    def offsets(self):
        """Where each layer starts: an int64 array ``(L, 2)`` of (offset of W_l, offset of b_l),
        for the compiled kernels (they rebuild the views from it)."""
        return np.array([[self.slices[f"W{l}"].start, self.slices[f"b{l}"].start]
                         for l in range(1, self.n_layers + 1)], dtype=np.int64)

    def flatten(self, arrays, dtype):
        """A new flat buffer holding ``arrays`` (a dict with every key of this layout)."""
        flat = np.empty(self.n_params, dtype=dtype)
        for key in self.keys:
            flat[self.slices[key]] = np.asarray(arrays[key]).reshape(-1)
        return flat


__all__ = ["Layout"]
