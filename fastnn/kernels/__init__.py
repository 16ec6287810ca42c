"""Compiled kernels: pure ``@jit`` functions on C-contiguous float32/float64 arrays.

No classes, no validation, no allocation in hot loops; outputs come last and are written in
place.  :mod:`fastnn.reference` holds the same math in plain NumPy.
"""
