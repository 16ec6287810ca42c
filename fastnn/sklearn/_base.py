"""Shared machinery of :class:`fastnn.MLPClassifier` and :class:`fastnn.MLPRegressor`.

The control flow is scikit-learn 1.9's ``BaseMultilayerPerceptron`` line for line (same
validation, same random draws, same stopping rules, same warnings); what differs is that the
weights live in a :class:`fastnn.Network` (``network_``) and each epoch is one compiled call of
:func:`fastnn.train.run_epoch`.  ``coefs_`` and ``intercepts_`` are the network's per-layer
views, so they always describe the model that predicts, across ``warm_start``, ``partial_fit``,
early stopping and pickling.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.neural_network._multilayer_perceptron import BaseMultilayerPerceptron
from sklearn.utils import check_random_state
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, validate_data

from fastnn import _sparse, stream
from fastnn.network import Network
from fastnn._checks import all_finite, non_finite_message, prepare_inputs
from fastnn._engine import NonFiniteLossError

from . import _solvers
from ._stochastic import NON_FINITE_MSG, StochasticMixin

_STOCHASTIC_SOLVERS = ["sgd", "adam"]
# scikit-learn's out_activation_ -> the engine's output layer.  "exp" (Poisson) trains an
# identity-output network and exponentiates (see _solvers.poisson_loss_and_grad).
_ENGINE_OUTPUT = {"softmax": "softmax", "logistic": "sigmoid", "identity": "identity", "exp": "identity"}


def _layer_views(name, kind, what):
    """A property over ``network_.weights`` / ``network_.biases``; assigning writes into them."""

    def get(self):
        return list(getattr(self._fitted_network(name), kind))

    def set(self, value):
        self._assign_layers(value, name, getattr(self._fitted_network(name), kind))

    return property(get, set, doc=f"{what}: views into ``network_.params``.")


def store_params(est, values):
    """``__init__`` body: every constructor argument stored under its own name (no logic)."""
    for key, value in values.items():
        if key != "self":
            setattr(est, key, value)


def compose_doc(summary, sklearn_cls, extra_params="", extra_attributes=""):
    """``summary`` + scikit-learn's own Parameters and Attributes sections (so ``help()`` shows
    the full reference without a copy that could drift) + fastnn's extras."""
    doc = sklearn_cls.__doc__ or ""
    try:
        i = doc.index("    Parameters\n    ----------")
        j = doc.index("    Attributes\n    ----------")
        k = doc.index("    See Also\n")
    except ValueError:  # pragma: no cover - another docstring layout
        return summary
    extra_attributes += (
        "    network_ : fastnn.Network\n"
        "        (fastnn) The trained network; ``coefs_`` and ``intercepts_`` are views into\n"
        "        its flat parameter buffer ``network_.params``.\n\n"
    )
    return summary + "\n" + doc[i:j] + extra_params + doc[j:k] + extra_attributes


class BaseMLP(StochasticMixin, BaseEstimator):
    """Base class; use :class:`MLPClassifier` or :class:`MLPRegressor`."""

    # scikit-learn's own table, so invalid values raise its InvalidParameterError messages
    _parameter_constraints: dict = dict(BaseMultilayerPerceptron._parameter_constraints)

    # ------------------------------------------------------------------ fitted weights
    coefs_ = _layer_views("coefs_", "weights", "Weight matrices ``W[l]`` (n_in, n_out)")
    intercepts_ = _layer_views("intercepts_", "biases", "Bias vectors ``b[l]`` (n_out,)")

    def _fitted_network(self, attribute):
        net = self.__dict__.get("network_")
        if net is None:  # AttributeError keeps hasattr() meaningful, as for scikit-learn's coefs_
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")
        return net

    @staticmethod
    def _assign_layers(value, name, views):
        if len(value) != len(views):
            raise ValueError(f"{name} must be a list of {len(views)} arrays, got {len(value)}")
        for i, (v, view) in enumerate(zip(value, views)):
            arr = np.asarray(v)
            if arr.shape != view.shape:
                raise ValueError(f"{name}[{i}] must have shape {view.shape}, got {arr.shape}")
            view[...] = arr

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Sparse input (CSR; CSC and COO converted once) is never densified: the first
            layer reads its non-zeros in place (see docs/sklearn.md).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels / indicator matrix (classifier) or real targets (regressor).
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = "network_" not in self.__dict__ or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
            _check_weights(sample_weight, "sample_weight")
        sample_weight = self._extra_sample_weight(y, sample_weight, incremental)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self._check_targets(y)
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1]] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)

        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        elif list(self.network_.layer_sizes) != layer_units:
            raise ValueError(
                f"The fitted network has layer sizes {list(self.network_.layer_sizes)} but "
                f"hidden_layer_sizes and the data give {layer_units}; warm_start and "
                "partial_fit need the same architecture (set warm_start=False to refit)."
            )
        dtype = self.network_.dtype
        X = _engine_input(X, dtype)
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=dtype)

        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, y, sample_weight)

        if not np.isfinite(self.network_.params).all():
            raise ValueError(NON_FINITE_MSG)
        return self

    def _extra_sample_weight(self, y, sample_weight, incremental):
        return sample_weight  # the classifier folds class_weight in here

    def _check_targets(self, y):
        """The regressor checks y >= 0 for the Poisson loss."""

    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._out_activation()
        net = Network.zeros(
            layer_units,
            activation=self.activation,
            output=_ENGINE_OUTPUT[self.out_activation_],
            dtype=np.dtype(dtype).name,
        )
        # scikit-learn's Glorot draws from the same RandomState, layer by layer (W then b), in
        # float64: the same random_state gives the same initial weights as scikit-learn.
        for i in range(self.n_layers_ - 1):
            fan_in, fan_out = layer_units[i], layer_units[i + 1]
            factor = 2.0 if self.activation == "logistic" else 6.0
            bound = np.sqrt(factor / (fan_in + fan_out))
            net.weights[i][...] = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            net.biases[i][...] = self._random_state.uniform(-bound, bound, fan_out)
        self.network_ = net
        self._best_params = net.params.copy()
        self.__dict__.pop("_optimizer", None)

        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.validation_loss_curve_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.validation_loss_curve_ = None
                self.best_validation_score_ = None

    # ------------------------------------------------------------------ losses
    def _loss_and_grad(self, X, y, sample_weight, encoded=False):
        """scikit-learn's ``_loss_grad_lbfgs``: the objective (with its L2 term) and gradient."""
        net = self.network_
        if not encoded:
            y = self._engine_targets(y)
        if self.out_activation_ == "exp":
            return _solvers.poisson_loss_and_grad(net, X, y, self.alpha, sample_weight)
        loss, grad = net.loss_and_grad(X, y, self.alpha, sample_weight)
        scale = self._data_loss_scale()
        if scale != 1.0:
            sw_sum = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))
            l2 = _solvers.l2_penalty(net, self.alpha, sw_sum)
            loss = (loss - l2) * scale + l2
        return loss, grad

    def _data_loss_scale(self):
        """scikit-learn's squared error averages over outputs (its gradient does not)."""
        if self.out_activation_ == "identity":
            return 1.0 / self.n_outputs_
        return 1.0

    def _engine_targets(self, y):
        """Encoded ``y`` (bool or float [n, k]) -> what the engine trains on: int64 labels for
        softmax, else C-contiguous float[n, k] in the network's dtype."""
        if self.out_activation_ == "softmax":
            return np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64)
        return np.ascontiguousarray(y, dtype=self.network_.dtype)

    # ------------------------------------------------------------------ lbfgs
    def _fit_lbfgs(self, X, y, sample_weight):
        y = self._engine_targets(y)
        if self.out_activation_ == "exp" or stream.is_out_of_core(X):
            objective = lambda: self._loss_and_grad(X, y, sample_weight, encoded=True)  # noqa: E731
        else:
            objective = self._prepared_objective(X, y, sample_weight)
        try:
            res = _solvers.lbfgs(
                self.network_,
                objective,
                max_iter=self.max_iter,
                max_fun=self.max_fun,
                tol=self.tol,
                verbose=self.verbose,
            )
        except NonFiniteLossError as exc:
            raise ValueError(NON_FINITE_MSG) from exc
        self.n_iter_ = _check_optimize_result("lbfgs", res, self.max_iter)
        self.loss_ = res.fun

    def _prepared_objective(self, X, y, sample_weight):
        """``_loss_and_grad`` for in-memory data, validated and converted once: each call runs
        only the compiled loss/gradient kernel into one preallocated gradient buffer."""
        net = self.network_
        Xp, targets, sw = prepare_inputs(net, X, y, sample_weight, self.alpha)
        grad = np.empty_like(net.params)
        alpha = self.alpha
        scale = self._data_loss_scale()
        sw_sum = X.shape[0] if sample_weight is None else float(np.sum(sample_weight))

        def objective():
            data, l2 = net.loss_grad_into(Xp, targets, sw, alpha, grad)
            loss = data + l2
            if scale != 1.0:
                l2 = _solvers.l2_penalty(net, alpha, sw_sum)
                loss = (loss - l2) * scale + l2
            return loss, grad

        return objective

    def _restore_from_network(self):
        """Rebuild private state after :func:`fastnn.load` set the parameters, ``network_`` and
        the public fitted attributes (the optimizer state is not saved: ``partial_fit`` and
        ``warm_start`` continue from the weights with a fresh optimizer)."""
        self._best_params = self.network_.params.copy()
        self._no_improvement_count = 0

    # ------------------------------------------------------------------ predict
    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer values (probabilities, or predictions for the regressor)."""
        if check_input:
            X = validate_data(self, checked_sparse(X), accept_sparse=["csr", "csc"],
                              reset=False)
        net = self.network_
        out = net.forward(_engine_input(X, net.dtype))
        if self.out_activation_ == "exp":
            out = np.exp(out, out=out)
        return out

    def _logits(self, X):
        """Output-layer pre-activations for dense ``X`` in the network's dtype."""
        return self.network_.logits(X)

    def _score_with_function(self, X, y, sample_weight, score_function):
        """Private score method without input validation."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic"
                " optimizers. %s is not stochastic." % self.solver
            )
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _check_weights(weights, name):
    """Per-sample weights must be finite, >= 0 and not all zero (the loss divides by their sum)."""
    if not np.isfinite(weights).all():
        raise ValueError(f"{name} contains NaN or infinity")
    if weights.size and weights.min() < 0:
        raise ValueError(f"{name} must be >= 0, got a minimum of {float(weights.min())!r}")
    if weights.size and not weights.sum() > 0:
        raise ValueError(f"{name}: the weights sum to zero; give some samples a positive weight")


def checked_sparse(X):
    """``X`` for scikit-learn's ``validate_data``: a sparse matrix in a format other than CSR
    and CSC is checked and converted to CSR here, since the conversion validate_data would run
    (scipy's, compiled) writes by its index arrays unchecked; any other ``X`` is returned as is."""
    if _sparse.is_sparse(X) and not isinstance(X, _sparse.CSR) and len(X.shape) == 2 \
            and X.format not in ("csr", "csc"):
        return _sparse.checked_csr(X, "X")
    return X


def _engine_input(X, dtype):
    """``X`` as the engine reads it: a C-contiguous, writeable ``dtype`` array, or for sparse
    input a validated :class:`fastnn._sparse.CSR` (never densified: the first layer reads the
    non-zeros in place).  A memory-mapped ``X`` is returned as is: fastnn reads it block by
    block (fastnn.stream)."""
    if stream.is_out_of_core(X):
        return X
    if _sparse.is_sparse(X):
        return _sparse.as_csr(X, X.shape[1], dtype)
    source = X
    with np.errstate(over="ignore", invalid="ignore"):  # out of range -> inf, checked below
        X = np.ascontiguousarray(X, dtype=dtype)
    if np.asarray(source).dtype.itemsize > X.dtype.itemsize and not all_finite(X):
        raise ValueError(non_finite_message(np.asarray(source), X, 0, dtype))
    if not X.flags.writeable:  # read-only memmaps: one compiled specialisation for all inputs
        X = X.copy()
    return X

