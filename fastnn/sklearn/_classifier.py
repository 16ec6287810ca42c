"""fastnn.MLPClassifier: scikit-learn's MLPClassifier on the fastnn engine."""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from fastnn.functional import log_softmax

from . import _solvers
from ._base import (BaseMLP, _check_weights, _engine_input, checked_sparse, compose_doc,
                    store_params)


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = compose_doc(
        """Multi-layer perceptron classifier: a drop-in for scikit-learn's ``MLPClassifier``.

    Same parameters, defaults, fitted attributes, random draws and stopping rules as
    scikit-learn 1.9; every epoch of ``sgd``/``adam`` is one compiled call, and ``lbfgs`` runs
    scipy's L-BFGS-B on the network's flat parameter buffer.  Binary targets use one logistic
    output, multiclass a softmax, multilabel indicator matrices independent logistic outputs.
    ``predict_log_proba`` is computed from the output logits.  See docs/sklearn.md.
""",
        SkMLPClassifier,
        extra_params="""    class_weight : dict, 'balanced' or None, default=None
        (fastnn) Class weights ``{label: weight}`` multiplied into the sample weights;
        ``'balanced'`` uses ``n_samples / (n_classes * np.bincount(y))`` (counting sample
        weights).  Not for multilabel targets, nor ``'balanced'`` in ``partial_fit``.

""",
        extra_attributes="""    validation_loss_curve_ : list of float or None
        (fastnn) With ``early_stopping=True``, the training objective (loss + L2 term) on
        the validation split after every epoch; otherwise None.

""",
    )

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(
        self,
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
        class_weight=None,
    ):
        store_params(self, locals())

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self, checked_sparse(X), y, accept_sparse=["csr", "csc"], multi_output=True,
            dtype=(np.float64, np.float32), reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        if self._label_binarizer.y_type_ == "multiclass":
            # the one-hot rows LabelBinarizer.transform gives, without its second validation
            # and sparse intermediate (digits: 1.4 ms -> 0.03 ms); every label of y is in
            # classes_ (checked above)
            onehot = np.zeros((len(y), len(self.classes_)), dtype=bool)
            onehot[np.arange(len(y)), np.searchsorted(self.classes_, y)] = True
            return X, onehot
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _extra_sample_weight(self, y, sample_weight, incremental):
        """Fold ``class_weight`` into the sample weights (``y`` is the binarized target)."""
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError(
                "class_weight is not supported for multilabel targets (y is an indicator "
                "matrix); pass per-sample weights through sample_weight instead."
            )
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class frequencies "
                "of the whole data set are unknown. Pass a dict, e.g. from "
                "sklearn.utils.class_weight.compute_class_weight('balanced', classes=..., y=...)."
            )
        if isinstance(self.class_weight, dict):
            for c, w in self.class_weight.items():
                if isinstance(w, bool) or not isinstance(w, numbers.Real) or not np.isfinite(w) \
                        or w < 0:
                    raise ValueError("class_weight must map classes to finite weights >= 0, "
                                     f"got {w!r} for class {c!r}")
        index = np.argmax(y, axis=1) if y.shape[1] > 1 else y[:, 0].astype(np.intp)
        labels = self.classes_[index]
        present = np.unique(labels)
        weights = np.ones(len(self.classes_))
        known = np.isin(self.classes_, present)
        weights[known] = compute_class_weight(
            self.class_weight, classes=self.classes_[known], y=labels,
            sample_weight=sample_weight if isinstance(self.class_weight, str) else None,
        )
        if isinstance(self.class_weight, dict):  # keys for classes absent from this y
            for i, c in enumerate(self.classes_):
                weights[i] = self.class_weight.get(c, weights[i])
        per_sample = weights[index].astype(np.float64 if sample_weight is None
                                           else sample_weight.dtype)
        if sample_weight is not None:
            per_sample *= sample_weight
        _check_weights(per_sample, "class_weight" if sample_weight is None
                       else "sample_weight times class_weight")
        return per_sample

    # ------------------------------------------------------------------ predict
    def predict(self, X):
        """Predict using the multi-layer perceptron classifier."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=_solvers.accuracy)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over the given data; ``classes`` is required on the first call."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_proba(self, X):
        """Probability estimates, columns ordered as ``classes_``."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """Log-probabilities computed from the output logits (``log_softmax``, or the
        log-sigmoid pair for logistic outputs), never as ``log(predict_proba)``: no ``-inf``
        where a probability underflows."""
        check_is_fitted(self)
        X = validate_data(self, checked_sparse(X), accept_sparse=["csr", "csc"],
                          reset=False)
        z = self._logits(_engine_input(X, self.network_.dtype))
        if self.out_activation_ == "softmax":
            return log_softmax(z)
        # log sigmoid(z) = -log(1 + e^-z); log(1 - sigmoid(z)) = -log(1 + e^z)
        log_pos = -np.logaddexp(0, -z)
        if self.n_outputs_ == 1:
            return np.hstack([-np.logaddexp(0, z), log_pos])
        return log_pos

    def _restore_from_network(self):
        super()._restore_from_network()
        lb = LabelBinarizer()
        lb.classes_ = np.asarray(self.classes_)
        if self.out_activation_ == "softmax":
            lb.y_type_ = "multiclass"
        elif self.n_outputs_ > 1:
            lb.y_type_ = "multilabel-indicator"
        else:
            lb.y_type_ = "binary"
        lb.sparse_input_ = False
        self._label_binarizer = lb

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags
