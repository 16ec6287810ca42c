"""Drop-in scikit-learn estimators on the fastnn engine: ``MLPClassifier``, ``MLPRegressor``.

Importing this module imports scikit-learn (``import fastnn`` alone does not).
"""
from ._classifier import MLPClassifier
from ._regressor import MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
