"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules, scikit-learn's rules exactly.

An optimizer holds hyperparameters and its state buffers (velocity, or Adam's ``m`` and ``v``),
which have the layout of :attr:`fastnn.Network.params` and are allocated lazily on the first
step.  The update itself is one in-place kernel (:mod:`fastnn.kernels.optim`), run per
minibatch inside the compiled epoch (:func:`fastnn.train.run_epoch`).

``lr`` may be changed between epochs (schedules do exactly that); ``t`` counts the steps taken;
``reset()`` forgets the state.  Using one optimizer for another network (another parameter
buffer, whatever its size) resets it automatically.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from fastnn.kernels import optim as _k

__all__ = ["SGD", "Adam", "AdamW", "Constant", "InvScaling", "Adaptive", "make_schedule"]


def _check_real(value, name, low, high=None, low_open=False, high_open=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    bad_low = value <= low if low_open else value < low
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {'inf' if high is None else high}{hi}, "
                         f"got {value!r}")
    return float(value)


def _describe(a):
    if not isinstance(a, np.ndarray):
        return type(a).__name__
    layout = "C-contiguous" if a.flags.c_contiguous else "non-contiguous"
    return f"{a.dtype}{list(a.shape)} ({layout}{'' if a.flags.writeable else ', read-only'})"


class _Optimizer:
    kind = -1
    _n_states = 0

    def __init__(self, lr):
        self.lr = lr
        self.reset()

    @property
    def lr(self):
        """Learning rate (may be changed between epochs)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _check_real(value, "lr", 0.0, low_open=True)

    def reset(self):
        """Forget the state (velocity / moments) and set the step counter ``t`` to 0."""
        self.t = 0
        self._states = None

    def buffers(self, params):
        """The state buffers ``(state1, state2)`` the kernels update for ``params`` (SGD: the
        velocity or ``float[0]``, and ``float[0]``; Adam: ``m`` and ``v``).

        Allocated (zeros) on first use or for another parameter buffer -- another network, even
        one of the same shape, starts afresh (``t`` back to 0) -- and again when the number of
        states changes (e.g. ``SGD.momentum`` set to or from 0).  The buffer is remembered by a
        weak reference: the optimizer does not keep a network alive, and a new buffer at a freed
        one's address is still a new buffer.  Only state that was pickled is adopted by a buffer
        of its size and dtype."""
        st, n = self._states, params.shape[0]
        if st is not None and st[2] is None and st[0].dtype == params.dtype \
                and max(st[0].shape[0], st[1].shape[0]) == n:  # unpickled: adopt the buffer
            st = self._states = (st[0], st[1], weakref.ref(params))
        if st is None or st[2] is None or st[2]() is not params:
            self.t = 0
            st = None
        lengths = [n if i < self._n_states else 0 for i in range(2)]
        if st is None or [st[0].shape[0], st[1].shape[0]] != lengths:
            bufs = [np.zeros(m, dtype=params.dtype) for m in lengths]
            st = self._states = (bufs[0], bufs[1], weakref.ref(params))
        return st[0], st[1]

    def __getstate__(self):
        # a weak reference cannot be pickled: the state travels unbound and is adopted by the
        # first parameter buffer of its size and dtype (the unpickled network's, with an
        # estimator pickled whole)
        state = dict(self.__dict__)
        if state.get("_states") is not None:
            state["_states"] = (*state["_states"][:2], None)
        return state

    def hyperparameters(self):
        """A new ``float64[5]`` of the hyperparameters as the kernels take them (SGD:
        ``(lr, momentum, nesterov, 0, 0)``; Adam/AdamW: ``(lr, beta1, beta2, eps,
        weight_decay)``); a learning-rate schedule run by the engine updates ``[0]``."""
        raise NotImplementedError

    def step(self, params, grad):
        """Apply one update to ``params`` (float[p], in place) from ``grad`` (float[p]).

        ``params``: writeable C-contiguous 1-D float32/float64 ndarray; ``grad``: same shape and
        dtype (any layout).  Raises ``TypeError``/``ValueError`` naming the argument otherwise.
        """
        if not isinstance(params, np.ndarray) or params.ndim != 1 \
                or params.dtype not in (np.float32, np.float64) \
                or not params.flags.c_contiguous or not params.flags.writeable:
            raise TypeError("params must be a writeable C-contiguous 1-D float32 or float64 "
                            f"ndarray, got {_describe(params)}")
        grad = np.asarray(grad)
        if grad.shape != params.shape:
            raise ValueError(f"grad must have the shape of params {params.shape}, got {grad.shape}")
        if grad.dtype != params.dtype:
            raise TypeError(f"grad must have the dtype of params ({params.dtype}), got {grad.dtype}")
        s1, s2 = self.buffers(params)
        _k.optimizer_step(self.kind, self.hyperparameters(), params,
                          np.ascontiguousarray(grad), s1, s2, self.t + 1)
        self.t += 1

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as scikit-learn:
    ``v = momentum v - lr g``; ``p += v``, or with Nesterov ``p += momentum v - lr g``."""

    kind = _k.SGD_KIND

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False):
        self.momentum = _check_real(momentum, "momentum", 0.0, 1.0)
        self.nesterov = bool(nesterov)
        super().__init__(lr)

    @property
    def _n_states(self):  # from the current momentum: it may be set after construction
        return 1 if self.momentum > 0 else 0

    def hyperparameters(self):
        return np.array([self.lr, self.momentum, float(self.nesterov), 0.0, 0.0])

    def _config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(_Optimizer):
    """Adam as scikit-learn: ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g²``,
    ``p -= lr sqrt(1-b2^t)/(1-b1^t) · m / (sqrt(v) + eps)``."""

    kind = _k.ADAM_KIND
    _n_states = 2

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1 = _check_real(beta1, "beta1", 0.0, 1.0)
        self.beta2 = _check_real(beta2, "beta2", 0.0, 1.0)
        self.eps = _check_real(eps, "eps", 0.0, low_open=True)
        self.weight_decay = 0.0
        super().__init__(lr)

    def hyperparameters(self):
        return np.array([self.lr, self.beta1, self.beta2, self.eps, self.weight_decay])

    def _config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, PyTorch's rule): every parameter
    is first scaled by ``1 - lr * weight_decay``, then takes the Adam step."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(lr, beta1, beta2, eps)
        self.weight_decay = _check_real(weight_decay, "weight_decay", 0.0)

    def _config(self):
        return {**super()._config(), "weight_decay": self.weight_decay}


# --------------------------------------------------------------------------- schedules
class Constant:
    """Keep ``optimizer.lr`` as it is."""

    def start(self, optimizer):
        pass

    def epoch_end(self, optimizer, samples_seen, loss):
        """Called after each epoch; returns True to stop training."""
        return False


class _EngineRule(Constant):
    """A schedule applied by the engine's end-of-epoch rule (:func:`fastnn.kernels.engine.
    epoch_end`, scikit-learn's), the one implementation that the compiled epoch blocks run."""

    _code = None

    def _state(self, optimizer, tol=0.0, patience=np.inf, power_t=0.5):
        self._stop = np.array([tol, patience, np.inf, 0.0, self._code, optimizer.lr, power_t,
                               0.0])

    def epoch_end(self, optimizer, samples_seen, loss):
        hp = np.array([optimizer.lr])
        self._stop[7] = samples_seen  # (the rule adds the epoch's samples: 0 more here)
        rule, stop_code = _engine_rule()
        stop = rule(self._stop, hp, float(loss), 0) == stop_code
        optimizer.lr = float(hp[0])
        return stop


def _engine_rule():
    from fastnn.kernels.rules import STOP, epoch_end

    return epoch_end, STOP


class InvScaling(_EngineRule):
    """scikit-learn's ``invscaling``: after each epoch ``lr = lr0 / (samples_seen + 1)^power_t``
    where ``lr0`` is the rate when training started and ``samples_seen`` counts every sample
    visited so far (scikit-learn's ``t_``)."""

    def __init__(self, power_t=0.5):
        from fastnn.kernels.engine import INVSCALING

        self._code = INVSCALING
        self.power_t = _check_real(power_t, "power_t", 0.0)

    def start(self, optimizer):
        self.lr0 = optimizer.lr
        self._state(optimizer, power_t=self.power_t)


class Adaptive(_EngineRule):
    """scikit-learn's ``adaptive``: when the training loss has not improved by ``tol`` for more
    than ``n_iter_no_change`` consecutive epochs, divide ``lr`` by 5; stop training once
    ``lr <= 1e-6``."""

    def __init__(self, tol=1e-4, n_iter_no_change=10):
        from fastnn.kernels.engine import ADAPTIVE

        self._code = ADAPTIVE
        self.tol = _check_real(tol, "tol", 0.0)
        if isinstance(n_iter_no_change, bool) or not isinstance(n_iter_no_change, numbers.Integral) \
                or n_iter_no_change < 1:
            raise ValueError(f"n_iter_no_change must be an int >= 1, got {n_iter_no_change!r}")
        self.n_iter_no_change = int(n_iter_no_change)

    def start(self, optimizer):
        self._state(optimizer, tol=self.tol, patience=self.n_iter_no_change)

    @property
    def best_loss(self):
        return float(self._stop[2])

    @property
    def no_improvement(self):
        return int(self._stop[3])


_SCHEDULES = {"constant": Constant, "invscaling": InvScaling, "adaptive": Adaptive}


def make_schedule(lr_schedule, power_t=0.5):
    """A schedule object from a name (``constant``, ``invscaling``, ``adaptive``) or an object
    with ``start(optimizer)`` and ``epoch_end(optimizer, samples_seen, loss) -> bool``."""
    if isinstance(lr_schedule, str):
        if lr_schedule not in _SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(_SCHEDULES)} or a schedule "
                             f"object, got {lr_schedule!r}")
        return InvScaling(power_t) if lr_schedule == "invscaling" else _SCHEDULES[lr_schedule]()
    if hasattr(lr_schedule, "epoch_end") and hasattr(lr_schedule, "start"):
        return lr_schedule
    raise ValueError(f"lr_schedule must be a name or an object with start() and epoch_end(), "
                     f"got {lr_schedule!r}")
