"""fastnn: fast, exact multilayer perceptrons on the CPU.

``import fastnn`` is cheap: each public name below is imported from its module on first use,
so a script that only trains a :class:`Network` never imports scikit-learn or matplotlib.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    # math (issue: core kernels)
    "softmax": "fastnn.functional",
    "log_softmax": "fastnn.functional",
    "softmax_cross_entropy": "fastnn.functional",
    "softmax_backward": "fastnn.functional",
    "sigmoid_cross_entropy": "fastnn.functional",
    "squared_error": "fastnn.functional",
    # training engine
    "Network": "fastnn.network",
    "fit": "fastnn.train",
    "History": "fastnn.train",
    "SGD": "fastnn.optim",
    "Adam": "fastnn.optim",
    "AdamW": "fastnn.optim",
    "check_gradients": "fastnn.gradcheck",
    "diagnose": "fastnn.diagnosis",
    "set_num_threads": "fastnn._threads",
    "get_num_threads": "fastnn._threads",
    # persistence
    "save": "fastnn.io",
    "load": "fastnn.io",
    # cold start
    "warmup": "fastnn.warmup",
    # scikit-learn estimators
    "MLPClassifier": "fastnn.sklearn",
    "MLPRegressor": "fastnn.sklearn",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return __all__
