"""fastnn: fast, exact multilayer perceptrons on the CPU.

Import is cheap: scikit-learn is imported only when an estimator is first used.
"""
from __future__ import annotations

__version__ = "0.1.0"

# --- public surface (each helper module adds its names here) ---------------------------------

_LAZY = {
    # name -> module (imported on first attribute access, keeps `import fastnn` fast)
    "MLPClassifier": "fastnn.sklearn",
    "MLPRegressor": "fastnn.sklearn",
}


def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
