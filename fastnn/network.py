"""The model: layer sizes, activations, an output/loss pair and ONE flat parameter buffer."""
from __future__ import annotations

import numbers

import numpy as np

from fastnn._aligned import zeros as aligned_zeros
from fastnn.kernels import engine as _k

from fastnn._checks import (all_finite, check_input, memory_problem,
                            non_finite_message)
from fastnn.kernels.activations import ACTIVATIONS, IDENTITY

__all__ = ["Network", "OUTPUTS", "LOSSES"]

#: output name -> kernel code; "logistic" is accepted as an alias of "sigmoid"
OUTPUTS = {"softmax": _k.OUT_SOFTMAX, "sigmoid": _k.OUT_SIGMOID, "identity": _k.OUT_IDENTITY}
_OUTPUT_ALIASES = {"logistic": "sigmoid"}
#: output name -> the losses it may be trained with; the first is its canonical loss, whose
#: fused output delta is ``p - y``.  Sigmoid + squared error keeps the factor ``p (1 - p)`` in its
#: delta and stalls on saturated outputs: it is there to reproduce that, not to be chosen.
LOSSES = {"softmax": ("cross_entropy",), "sigmoid": ("binary_cross_entropy", "squared_error"),
          "identity": ("squared_error",)}
#: non-canonical (output, loss) -> kernel code used in training (forward uses OUTPUTS[output])
_TRAIN_KINDS = {("sigmoid", "squared_error"): _k.OUT_SIGMOID_SE}
_HIDDEN_NAMES = ("identity", "logistic", "tanh", "relu", "leaky_relu")
_ACT_ALIASES = {"sigmoid": "logistic"}
#: rows per chunk in forward()/predict(): bounds the hidden-layer temporaries
_FORWARD_ELEMENTS = 1 << 22


def _canonical_activation(name, where):
    if not isinstance(name, str):
        raise TypeError(f"{where} must be a string, got {type(name).__name__}")
    canon = _ACT_ALIASES.get(name, name)
    if canon not in _HIDDEN_NAMES:
        raise ValueError(
            f"{where} must be one of {', '.join(_HIDDEN_NAMES)} (or 'sigmoid'), got {name!r}")
    return canon


def _random_state(seed):
    if seed is None or isinstance(seed, numbers.Integral):
        if seed is not None and not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed must be None or an int in [0, 2**32 - 1], got {seed!r}")
        return np.random.RandomState(seed)
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    raise TypeError(f"seed must be None, an int, a numpy RandomState or Generator, got {seed!r}")


class Network:
    """A multilayer perceptron with one flat parameter buffer.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_in, h_1, ..., h_m, n_out)``, at least two entries, all >= 1.
    activation : str or sequence of str
        Hidden activation: one name for every hidden layer, or one per hidden layer, among
        ``identity``, ``logistic`` (alias ``sigmoid``), ``tanh``, ``relu``, ``leaky_relu``.
    output : {"softmax", "sigmoid", "identity"}
        Output layer and its loss: softmax + cross-entropy (multiclass), sigmoid + binary
        cross-entropy (binary / multilabel; ``"logistic"`` is an alias), identity + squared
        error (regression).
    loss : None or str
        The loss trained with: None (the canonical one of ``output``: ``"cross_entropy"``,
        ``"binary_cross_entropy"``, ``"squared_error"``) or, for ``output="sigmoid"`` only,
        ``"squared_error"``: ``L = sum_i ||sigmoid(z_i) - y_i||^2 / (2n)``, the output delta
        ``(p - y) p (1 - p) / n``.  That pairing is for reproducing a from-scratch network: its
        delta vanishes where an output saturates at the wrong value, so training stalls
        (docs/softmax.md).  Squared error on a softmax is not offered (use
        :func:`fastnn.softmax_backward` to build it by hand).
    dtype : {"float32", "float64"}
    seed : None, int, numpy RandomState or Generator
        Initialisation is scikit-learn's ``_init_coef``: per layer, ``W`` then ``b`` drawn from
        ``uniform(-r, r)`` in float64 and cast, ``r = sqrt(6 / (fan_in + fan_out))``, or
        ``sqrt(2 / ...)`` when the activation is logistic (the output layer uses the last hidden
        layer's activation).  An int seeds ``np.random.RandomState``, so with the same
        ``random_state`` the weights equal scikit-learn's.

    Attributes
    ----------
    layer_sizes : tuple of int
    activations : tuple of str — canonical hidden activation names (one per hidden layer).
    output : str — canonical output name.
    loss : str — the loss trained with (see ``loss`` above).
    dtype : numpy.dtype
    n_layers : int — number of weight layers (``len(layer_sizes) - 1``).
    params : float[p] — all parameters: ``W[0], b[0], W[1], b[1], ...``.
    weights, biases : lists of views into ``params`` (``W[l]`` is C-contiguous
        ``n_in x n_out``); writing into them writes into ``params``.
    tables : tuple of four int64 arrays — ``(sizes, w_off, b_off, codes)``: the layout the
        kernels read (:mod:`fastnn.kernels.engine`): layer widths, the offsets of ``W[l]`` and
        ``b[l]`` in ``params`` and each layer's activation code.
    out_kind : int — the engine's output kind (``OUTPUTS[output]``).
    scratch : dict — buffers that the training and streaming code reuse across calls (never
        part of the model: not saved, not copied).
    """

    def __init__(self, layer_sizes, activation="relu", output="softmax", dtype="float32",
                 seed=None, loss=None):
        self._setup(layer_sizes, activation, output, dtype, loss)
        self._init_params(_random_state(seed))

    @classmethod
    def zeros(cls, layer_sizes, activation="relu", output="softmax", dtype="float32", loss=None):
        """A validated network whose parameters are all zero, for callers that set every one of
        them (loading, the estimators' scikit-learn initialisation, a float64 twin): drawing
        random weights first costs ~0.2 s for a 784-4096-4096-10 network."""
        net = cls.__new__(cls)
        net._setup(layer_sizes, activation, output, dtype, loss)
        return net

    def _setup(self, layer_sizes, activation, output, dtype, loss=None):
        try:
            sizes = tuple(layer_sizes)
        except TypeError:
            sizes = None
        if sizes is None or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in sizes):
            raise TypeError(f"layer_sizes must be a sequence of ints, got {layer_sizes!r}")
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"layer_sizes must have at least 2 entries, all >= 1, got {layer_sizes!r}")
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            acts = (_canonical_activation(activation, "activation"),) * n_hidden
        elif not hasattr(activation, "__iter__"):
            raise TypeError("activation must be a name such as 'relu' or a sequence of names, "
                            f"got {activation!r}")
        else:
            acts = tuple(_canonical_activation(a, "activation") for a in activation)
            if len(acts) != n_hidden:
                raise ValueError(
                    f"activation has {len(acts)} entries but layer_sizes has {n_hidden} hidden "
                    "layers: give one name, or one per hidden layer")
        if not isinstance(output, str) or _OUTPUT_ALIASES.get(output, output) not in OUTPUTS:
            raise ValueError(f"output must be one of softmax, sigmoid, identity, got {output!r}")
        output = _OUTPUT_ALIASES.get(output, output)
        if loss is None:
            loss = LOSSES[output][0]
        if not isinstance(loss, str) or loss not in LOSSES[output]:
            raise ValueError(f"loss must be one of {', '.join(LOSSES[output])} (or None) for a "
                             f"{output} output, got {loss!r}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        problem = memory_problem(n_params * dt.itemsize)
        if problem:
            raise ValueError(f"layer_sizes {list(sizes)} need {n_params:,} {dt.name} parameters "
                             f"({n_params * dt.itemsize / 2 ** 30:.3g} GiB); {problem}")

        self.layer_sizes = sizes
        self.activations = acts
        self.output = output
        self.loss = loss
        self.dtype = dt
        self.n_layers = len(sizes) - 1
        self._build_layout()

    # ------------------------------------------------------------------ layout
    def _build_layout(self):
        sizes = self.layer_sizes
        w_off, b_off, off = [], [], 0
        for l in range(self.n_layers):
            w_off.append(off)
            off += sizes[l] * sizes[l + 1]
            b_off.append(off)
            off += sizes[l + 1]
        codes = [ACTIVATIONS[a] for a in self.activations] + [IDENTITY]
        self.tables = tuple(np.array(t, dtype=np.int64) for t in (sizes, w_off, b_off, codes))
        self.forward_kind = OUTPUTS[self.output]
        self.out_kind = _TRAIN_KINDS.get((self.output, self.loss), self.forward_kind)
        self.params = aligned_zeros(off, self.dtype)  # (cache-line aligned: fastnn._aligned)
        self._make_views()
        self.scratch = {}

    def _make_views(self):
        sizes, p = self.layer_sizes, self.params
        self.weights = [p[o:o + sizes[l] * sizes[l + 1]].reshape(sizes[l], sizes[l + 1])
                        for l, o in enumerate(self.tables[1])]
        self.biases = [p[o:o + sizes[l + 1]] for l, o in enumerate(self.tables[2])]

    def _init_params(self, rng):
        for l in range(self.n_layers):
            fan_in, fan_out = self.layer_sizes[l], self.layer_sizes[l + 1]
            act = self.activations[min(l, len(self.activations) - 1)] if self.activations else ""
            bound = np.sqrt((2.0 if act == "logistic" else 6.0) / (fan_in + fan_out))
            self.weights[l][...] = rng.uniform(-bound, bound, (fan_in, fan_out))
            self.biases[l][...] = rng.uniform(-bound, bound, fan_out)

    @property
    def n_params(self):
        """Number of parameters (length of :attr:`params`)."""
        return self.params.shape[0]

    # ------------------------------------------------------------------ inference
    def forward(self, X):
        """Output-layer values: probabilities for softmax/sigmoid, values for identity.

        ``X : float[n, layer_sizes[0]]`` (any numeric dtype; converted to :attr:`dtype`), or a
        scipy.sparse matrix (read as CSR in place, never densified).
        Returns ``float[n, layer_sizes[-1]]`` of :attr:`dtype`.  Rows are processed in bounded
        chunks (also the dtype conversion), so no temporary grows with ``n``.
        """
        return self._outputs(X, self.forward_kind)

    def logits(self, X):
        """Output-layer pre-activations ``z = a_{L-1} @ W[-1] + b[-1]`` (before the softmax /
        sigmoid; equal to :meth:`forward` for identity outputs).

        ``X : float[n, layer_sizes[0]]`` (any numeric dtype; converted to :attr:`dtype`).
        Returns ``float[n, layer_sizes[-1]]`` of :attr:`dtype`, computed in bounded chunks of
        rows like :meth:`forward`.  ``log_softmax(logits(X))`` gives finite log-probabilities
        where ``log(forward(X))`` would underflow to ``-inf``.
        """
        return self._outputs(X, _k.OUT_IDENTITY)

    def _outputs(self, X, out_kind):
        from fastnn import _sparse, stream

        if _sparse.is_sparse(X):  # read in place, never densified
            X = _sparse.as_csr(X, self.layer_sizes[0], self.dtype)
            n = X.shape[0]
            chunk = self._chunk(n)
            ws = np.empty(_k.workspace_size(self.layer_sizes, chunk, True), dtype=self.dtype)
            out = np.empty((n, self.layer_sizes[-1]), dtype=self.dtype)
            _k.forward(X.arrays, self.tables, out_kind, self.params, ws, chunk, out.reshape(-1))
            return out
        if stream.is_out_of_core(X):  # a memmap: read block by block into one buffer
            return stream.forward(self, X, fn=lambda block: self._outputs(block, out_kind))
        X = check_input(X, self.layer_sizes[0])
        n = X.shape[0]
        chunk = self._chunk(n)
        # per call (bounded by the chunk): concurrent calls from several threads stay safe
        ws = np.empty(_k.workspace_size(self.layer_sizes, chunk), dtype=self.dtype)
        out = np.empty((n, self.layer_sizes[-1]), dtype=self.dtype)
        # (read-only input is converted in chunks too: the kernels take writeable arrays only,
        # so that one compiled version serves every caller)
        ready = X.dtype == self.dtype and X.flags.c_contiguous and X.flags.writeable
        step = max(n, 1) if ready else max(chunk, 1 << 14)
        for i in range(0, n, step):
            if ready:
                xi = X[i:i + step]
            else:
                with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                    xi = np.array(X[i:i + step], dtype=self.dtype, order="C")
            if not all_finite(xi):  # NaN in would give a confident class 0 out
                raise ValueError(non_finite_message(X[i:i + step], xi, i, self.dtype))
            _k.forward(xi.reshape(-1), self.tables, out_kind, self.params, ws, chunk,
                       out[i:i + step].reshape(-1))
        return out

    def _chunk(self, n):
        """Rows per forward call: the hidden activations of a chunk stay bounded."""
        hidden = max(1, sum(self.layer_sizes[1:-1]))
        return max(1, min(n, max(256, _FORWARD_ELEMENTS // hidden)))

    def layer_outputs(self, X):
        """The output of every layer: hidden activations ``h_1, ..., h_m``, then
        :meth:`forward`'s values.

        ``X : float[n, layer_sizes[0]]`` (any numeric dtype; converted to :attr:`dtype`).
        Returns a list of ``n_layers`` arrays ``float[n, layer_sizes[l + 1]]`` of :attr:`dtype`,
        for inspecting a network (e.g. :func:`fastnn.diagnose`): all of them are held at once,
        so pass a sample of rows.  Hidden layer ``l`` is computed by the kernel of
        :meth:`forward` run on the first ``l`` layers (no other kernel to compile; ``O(L^2)``
        layer evaluations for ``L`` layers).
        """
        from fastnn import _sparse

        sparse = _sparse.is_sparse(X)
        if sparse:
            a = _sparse.as_csr(X, self.layer_sizes[0], self.dtype)
            x = a.arrays
        else:
            src = check_input(X, self.layer_sizes[0])
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                a = np.array(src, dtype=self.dtype, order="C")
            x = a.reshape(-1)  # (the kernels take dense rows flat)
            if not all_finite(a):
                raise ValueError(non_finite_message(src, a, 0, self.dtype))
        n = a.shape[0]
        sizes, w_off, b_off, codes = self.tables
        outs = []
        for l in range(self.n_layers - 1):
            prefix = (sizes[:l + 2], w_off[:l + 1], b_off[:l + 1], codes[:l + 1])
            ws = np.empty(_k.workspace_size(prefix[0], max(n, 1), sparse), dtype=self.dtype)
            h = np.empty((n, self.layer_sizes[l + 1]), dtype=self.dtype)
            _k.forward(x, prefix, _k.OUT_IDENTITY, self.params, ws, max(n, 1), h.reshape(-1))
            outs.append(h)
        outs.append(self.forward(a))
        return outs

    def predict_proba(self, X):
        """Same as :meth:`forward` (probabilities for softmax and sigmoid outputs)."""
        return self.forward(X)

    def predict(self, X):
        """Argmax class index (softmax, int64[n]), 0/1 indicators (sigmoid, int64[n, k]) or
        values (identity, float[n, k])."""
        out = self.forward(X)
        if self.output == "softmax":
            return np.argmax(out, axis=1)
        if self.output == "sigmoid":
            return (out > 0.5).astype(np.int64)
        return out

    # ------------------------------------------------------------------ training math
    def loss_and_grad(self, X, y, alpha=0.0, sample_weight=None):
        """Mean loss and its gradient with respect to :attr:`params`.

        ``loss = sum_i w_i l_i / sum(w) + alpha / (2 sum(w)) sum_l ||W_l||^2`` (biases are not
        penalised; ``sum(w) = n`` without sample weights) — scikit-learn's objective.

        Parameters
        ----------
        X : float[n, n_in] or a scipy.sparse matrix (never densified); y : targets as
            :func:`fastnn.train.prepare_targets` accepts
            (labels int[n] or probability rows for softmax; float[n, k] otherwise).
        alpha : float >= 0; sample_weight : float[n] >= 0 or None.

        Returns
        -------
        (loss, grad) : float and float[p] (a new array shaped like :attr:`params`).
        """
        from fastnn import stream
        from fastnn._checks import prepare_inputs

        if stream.is_out_of_core(X):  # a memmap: summed block by block, never copied whole
            return stream.loss_and_grad(self, X, y, alpha, sample_weight)
        X, targets, sw = prepare_inputs(self, X, y, sample_weight, alpha)
        if X.shape[0] == 0:  # a mean over no rows: NaN, not a loss
            raise ValueError("X must have at least one row")
        grad = np.empty_like(self.params)
        data, l2 = self.loss_grad_into(X, targets, sw, alpha, grad)
        return data + l2, grad

    def loss_grad_into(self, X, targets, sw, alpha, grad, out_kind=None):
        """``(data_loss, l2_loss)`` of :meth:`loss_and_grad` with the gradient written into
        ``grad``, on inputs already in the kernels' form (no validation): ``X`` C-contiguous
        writeable ``float[n, n_in]`` of :attr:`dtype`, ``targets`` from
        :func:`fastnn.train.prepare_targets`, ``sw`` ``float[n]`` or ``float[0]``; ``out_kind``
        (an engine output kind) overrides the network's loss.  For solvers that evaluate the
        objective many times (L-BFGS)."""
        from fastnn._engine import loss_marker
        from fastnn._sparse import CSR

        kind = self.out_kind if out_kind is None else out_kind
        sparse = isinstance(X, CSR)
        # per call: it grows with n, so it is not kept on the network after the call
        ws = np.empty(_k.workspace_size(self.layer_sizes, X.shape[0], sparse), dtype=self.dtype)
        return _k.loss_grad((X.arrays if sparse else X.reshape(-1), targets, sw),
                            loss_marker(kind, targets), self.tables, self.params, float(alpha),
                            ws, grad)

    # ------------------------------------------------------------------ misc
    def copy(self):
        """An independent copy (same architecture, copied parameters)."""
        new = self.zeros_like()
        new.params[...] = self.params
        return new

    def zeros_like(self, dtype=None):
        """A :meth:`zeros` network of this architecture (``dtype``: this one's by default)."""
        return Network.zeros(self.layer_sizes, list(self.activations) or "identity",
                             self.output, self.dtype if dtype is None else dtype, self.loss)

    def save(self, path):
        """Write the network to ``path`` (see :func:`fastnn.save`)."""
        from fastnn.io import save

        save(self, path)

    def __getstate__(self):
        return {"layer_sizes": self.layer_sizes, "activations": self.activations,
                "output": self.output, "loss": self.loss, "dtype": self.dtype.name,
                "params": self.params}

    def __setstate__(self, state):
        self.layer_sizes = tuple(state["layer_sizes"])
        self.activations = tuple(state["activations"])
        self.output = state["output"]
        self.loss = state.get("loss") or LOSSES[self.output][0]
        self.dtype = np.dtype(state["dtype"])
        self.n_layers = len(self.layer_sizes) - 1
        self._build_layout()
        self.params[...] = state["params"]

    def __repr__(self):
        acts = self.activations[0] if len(set(self.activations)) == 1 else list(self.activations)
        loss = "" if self.loss == LOSSES[self.output][0] else f", loss={self.loss!r}"
        return (f"Network({list(self.layer_sizes)}, activation={acts!r}, "
                f"output={self.output!r}{loss}, dtype={self.dtype.name!r})")
