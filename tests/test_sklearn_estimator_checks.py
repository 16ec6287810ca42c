"""scikit-learn's own estimator checks over fastnn.MLPClassifier and fastnn.MLPRegressor.

The estimators are checked with scikit-learn's settings for its own MLPs
(``sklearn/utils/_test_common/instance_generator.py``): ``max_iter=100``.  The sample-weight
equivalence check also runs with the parameters scikit-learn uses for its own MLPs there
(``PER_ESTIMATOR_CHECK_PARAMS``): lbfgs for the classifier, sgd with ``tol=1e-2`` for the
regressor.
"""
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data,
    parametrize_with_checks,
)

from fastnn.sklearn import MLPClassifier, MLPRegressor

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]


# No check is expected to fail (none is marked xfail).
@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "estimator",
    [
        MLPClassifier(solver="lbfgs", max_iter=100),
        MLPRegressor(solver="sgd", tol=1e-2, random_state=42, max_iter=100),
    ],
    ids=["MLPClassifier-lbfgs", "MLPRegressor-sgd"],
)
def test_sample_weight_equivalence(estimator):
    # scikit-learn's PER_ESTIMATOR_CHECK_PARAMS for its own MLPs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)
