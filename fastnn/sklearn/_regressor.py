"""fastnn.MLPRegressor: scikit-learn's MLPRegressor on the fastnn engine."""
from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import _solvers
from ._base import BaseMLP, checked_sparse, compose_doc, store_params


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = compose_doc(
        """Multi-layer perceptron regressor: a drop-in for scikit-learn's ``MLPRegressor``.

    Same parameters, defaults, fitted attributes, random draws and stopping rules as
    scikit-learn 1.9.  ``loss='squared_error'`` trains an identity output (half squared error);
    ``loss='poisson'`` an exponential output with the half Poisson deviance (log link), which
    needs ``y >= 0``.  See docs/sklearn.md.
""",
        SkMLPRegressor,
        extra_attributes="""    validation_loss_curve_ : list of float or None
        (fastnn) With ``early_stopping=True``, the training objective (loss + L2 term) on
        the validation split after every epoch; otherwise None.

""",
    )

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
    ):
        store_params(self, locals())

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, checked_sparse(X), y, accept_sparse=["csr", "csc"], multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    def _check_targets(self, y):
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                "loss='poisson' requires non-negative targets (y >= 0), got min(y) = "
                f"{y.min()!r}."
            )

    def predict(self, X):
        """Predict using the multi-layer perceptron model."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=_solvers.r2)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given data (stochastic solvers only)."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
