"""The ``sgd``/``adam`` half of scikit-learn's MLP fit: epochs, stopping rules, early stopping.

Mixed into :class:`fastnn.sklearn._base.BaseMLP`; scikit-learn 1.9's ``_fit_stochastic``, with
each epoch one compiled call of :func:`fastnn.train.run_epoch` (or
:func:`._solvers.poisson_epoch` for the Poisson loss) — or a block of epochs per call when
nothing has to happen in Python between them — and its end-of-epoch rule
(``_update_no_improvement_count``, ``iteration_ends``, ``trigger_stopping``) as the engine's
:func:`fastnn.kernels.rules.epoch_end`, whether it runs in the kernel or here.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from fastnn import functional as F
from fastnn import stream
from fastnn import _engine
from fastnn._engine import NonFiniteLossError, run_epoch
from fastnn.kernels.rules import GO_ON, RATE_DIVIDED, STOP, epoch_end

from . import _solvers

NON_FINITE_MSG = (
    "Solver produced non-finite parameter weights. The input data may"
    " contain large values and need to be preprocessed."
)


#: a block of epochs (one compiled call, see ``_fit_epoch_blocks``) lasts about this long
BLOCK_SECONDS = 0.25
#: seconds per epoch measured by earlier fits of this process, by (layer sizes, batch size,
#: rows, dtype): a repeated fit (cross-validation, a search, a benchmark) sizes its first block
#: from it instead of timing a short first block (one compiled call fewer)
_epoch_seconds = {}


def _block_epochs(epoch_seconds):
    """Epochs in a block of about :data:`BLOCK_SECONDS` (at least one)."""
    return max(1, int(BLOCK_SECONDS / max(epoch_seconds, 1e-9)))


class StochasticMixin:
    """``_fit_stochastic`` and its helpers (needs BaseMLP's network_, _engine_targets, ...)."""

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = _solvers.LearningRateSchedule(self)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            X_train, X_val, y_train, y_val, sw_train, sw_val = self._validation_split(X, y, sample_weight)
            val = (X_val, self._labels_or_values(y_val), sw_val, self._engine_targets(y_val))
        else:
            X_train, y_train, sw_train = X, y, sample_weight
            val = (None, None, None, None)

        n_samples = X_train.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than "
                    "sample size. It is going to be clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        targets = self._engine_targets(y_train)
        sample_idx = np.arange(n_samples, dtype=np.int64)
        try:
            self.n_iter_ = 0
            if self._epochs_in_blocks(X_train, early_stopping, incremental):
                self._fit_epoch_blocks(X_train, targets, batch_size, sample_idx, sw_train)
                return
            stop = self._stop_state(early_stopping)
            for _ in range(self.max_iter):
                if self.shuffle:
                    sample_idx = _solvers.shuffled(sample_idx, self._random_state)
                try:
                    loss = self._epoch(X_train, targets, batch_size, sample_idx, sw_train)
                except NonFiniteLossError as exc:
                    self._diverged(exc, n_samples, incremental)
                    break
                if self._end_epoch(loss, n_samples, early_stopping, val, stop) == STOP:
                    break
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    _warn_max_iter(self.max_iter)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:  # restore the best weights, in place: coefs_ stay views
            self.network_.params[...] = self._best_params

    def _epochs_in_blocks(self, X, early_stopping, incremental):
        """Whether ``fit`` may run its epochs in blocks of one compiled call each (see
        :func:`fastnn._engine.run_epochs`): nothing has to happen in Python between epochs."""
        return not (early_stopping or incremental or self.verbose or stream.is_out_of_core(X))

    def _fit_epoch_blocks(self, X, targets, batch_size, sample_idx, sample_weight):
        """The epoch loop of ``_fit_stochastic`` (no early stopping, not verbose) in blocks of
        epochs: the stopping rule and the learning-rate schedule run in the kernel between the
        epochs of a block, the same rule ``_end_epoch`` applies here.  Blocks
        last ~:data:`BLOCK_SECONDS` so that Ctrl-C still interrupts training promptly."""
        net, schedule = self.network_, self._optimizer
        n_samples = X.shape[0]
        sw = _engine.weights_array(sample_weight, net.dtype)
        stop = self._stop_state(early_stopping=False)
        out_kind = _engine.OUT_POISSON if self.out_activation_ == "exp" else None
        # without an earlier fit of this shape, the first block is one epoch, timed
        key = (tuple(net.layer_sizes), batch_size, n_samples, net.dtype.name)
        block = 1
        if key in _epoch_seconds:
            block = max(block, _block_epochs(_epoch_seconds[key]))
        while self.n_iter_ < self.max_iter:
            block = min(block, self.max_iter - self.n_iter_)
            rng_state = self._random_state.get_state() if self.shuffle else None
            if self.shuffle:
                orders, sample_idx = _solvers.shuffled_block(sample_idx, self._random_state,
                                                             block)
            else:
                orders = np.broadcast_to(sample_idx, (block, n_samples))
            start = time.perf_counter()
            losses, stopped, failed = _engine.run_epochs(
                net, X, targets, sw, schedule.engine, batch_size=batch_size, orders=orders,
                alpha=self.alpha, data_loss_scale=self._data_loss_scale(), stop=stop,
                out_kind=out_kind)
            elapsed = time.perf_counter() - start
            for loss in losses:
                self.n_iter_ += 1
                self.loss_ = float(loss)
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
            self.best_loss_ = float(stop[2])
            self._no_improvement_count = int(stop[3])
            used = len(losses) + (1 if failed else 0)  # (a failed epoch drew its shuffle)
            if self.shuffle and used < block:
                # keep only the shuffles of the epochs that ran: a later fit continues the same
                # random sequence as scikit-learn's
                self._random_state.set_state(rng_state)
                _solvers.shuffled_block(orders[0], self._random_state, used)
            if failed:
                exc = NonFiniteLossError(
                    f"the training loss became NaN or infinite at minibatch {failed} of epoch "
                    f"{self.n_iter_ + 1}")
                self._diverged(exc, n_samples, False)
                return
            if stopped:
                return
            if len(_epoch_seconds) >= 256:  # (a process fitting many shapes)
                _epoch_seconds.clear()
            _epoch_seconds[key] = elapsed / max(1, len(losses))
            block = _block_epochs(_epoch_seconds[key])
        _warn_max_iter(self.max_iter)

    def _epoch(self, X, targets, batch_size, order, sample_weight):
        if self.out_activation_ == "exp":  # compiled as well: the engine's Poisson output kind
            return _solvers.poisson_epoch(
                self.network_, X, targets, self._optimizer.engine, batch_size=batch_size,
                order=order, alpha=self.alpha, sample_weight=sample_weight,
            )
        if stream.is_out_of_core(X):  # larger than memory: shuffled blocks (fastnn.stream)
            return stream.run_epoch_blocks(
                self.network_, X, targets, self._optimizer.engine, batch_size=batch_size,
                rng=self._random_state, shuffle=self.shuffle, alpha=self.alpha,
                sample_weight=sample_weight, data_loss_scale=self._data_loss_scale(),
            )
        return run_epoch(
            self.network_, X, targets, self._optimizer.engine, batch_size=batch_size,
            order=order, alpha=self.alpha, sample_weight=sample_weight,
            data_loss_scale=self._data_loss_scale(),
        )

    def _stop_state(self, early_stopping):
        """The ``stop`` array of the engine's end-of-epoch rule from this estimator's state
        (with early stopping the rule's loss is minus the validation score)."""
        schedule = self._optimizer
        best = -self.best_validation_score_ if early_stopping else self.best_loss_
        return _engine.stop_state(
            self.tol, self.n_iter_no_change, best, self._no_improvement_count,
            self.learning_rate if self.solver == "sgd" else "constant",
            schedule.learning_rate_init, self.power_t, self.t_)

    def _end_epoch(self, loss, n_samples, early_stopping, val, stop):
        """scikit-learn's end of an epoch: record it, score the validation split, then the
        engine's rule (:func:`fastnn.kernels.rules.epoch_end`, the one implementation of the
        no-improvement count, the learning-rate schedules and the stopping decision).  Returns
        the rule's answer."""
        self.n_iter_ += 1
        self.loss_ = float(loss)
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
        value = self.loss_
        if early_stopping:
            X_val, y_val, sw_val, y_val_encoded = val
            score = self._score(X_val, y_val, sample_weight=sw_val)
            self.validation_scores_.append(score)
            self.validation_loss_curve_.append(
                self._validation_loss(X_val, y_val_encoded, sw_val))
            if self.verbose:
                print("Validation score: %f" % score)
            value = -score
        best = stop[2]
        hp = np.array([self._optimizer.learning_rate])
        answer = epoch_end(stop, hp, value, n_samples)
        self._optimizer.learning_rate = hp[0]
        self.t_ += n_samples
        self._no_improvement_count = int(stop[3])
        if not early_stopping:
            self.best_loss_ = float(stop[2])
        elif stop[2] < best:  # a better validation score: keep these weights
            self.best_validation_score_ = -float(stop[2])
            self._best_params[...] = self.network_.params
        if answer != GO_ON and self.verbose:
            print(self._stopping_message(early_stopping, answer))
        return answer

    def _stopping_message(self, early_stopping, answer):
        if early_stopping:
            msg = ("Validation score did not improve more than tol=%f for %d consecutive "
                   "epochs." % (self.tol, self.n_iter_no_change))
        else:
            msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                   % (self.tol, self.n_iter_no_change))
        if answer == RATE_DIVIDED:
            return msg + " Setting learning rate to %f" % self._optimizer.learning_rate
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            return msg + " Learning rate too small. Stopping."
        return msg + " Stopping."

    def _diverged(self, exc, n_samples, incremental):
        """A non-finite loss.  scikit-learn keeps training on non-finite weights: every later
        epoch has a NaN loss and score, which resets the no-improvement count, so it runs to
        ``max_iter`` and then fails (no early stopping) or restores its best weights."""
        if not self.early_stopping:
            raise ValueError(NON_FINITE_MSG) from exc
        remaining = 1 if incremental else self.max_iter - self.n_iter_
        for _ in range(remaining):
            self.n_iter_ += 1
            self.t_ += n_samples
            self.loss_ = np.nan
            self.loss_curve_.append(np.nan)
            self.validation_scores_.append(np.nan)
            self.validation_loss_curve_.append(np.nan)
            self._no_improvement_count = 0
        if not incremental:
            _warn_max_iter(self.max_iter)

    def _validation_split(self, X, y, sample_weight):
        # don't stratify in multilabel classification (scikit-learn's rule: single output only)
        stratify = y if (is_classifier(self) and self.n_outputs_ == 1) else None
        arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
        split = _solvers.split_rows if stream.is_out_of_core(X) else train_test_split
        parts = split(
            *arrays, random_state=self._random_state, test_size=self.validation_fraction,
            stratify=stratify,
        )
        if sample_weight is None:
            parts = parts + [None, None]
        X_train, X_val, y_train, y_val, sw_train, sw_val = parts
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' "
                "or the size of your dataset."
            )
        return X_train, X_val, y_train, y_val, sw_train, sw_val

    def _labels_or_values(self, y):
        """Encoded targets -> what ``score`` compares predictions with."""
        if is_classifier(self):
            return self._label_binarizer.inverse_transform(y)
        return y.ravel() if y.shape[1] == 1 else y

    def _validation_loss(self, X_val, y_val_encoded, sw_val):
        """The training objective (loss + L2 term) on the validation split, from one forward
        pass (no gradient): ``y_val_encoded`` is already in the engine's form."""
        net = self.network_
        sw_sum = X_val.shape[0] if sw_val is None else float(np.sum(sw_val))
        l2 = _solvers.l2_penalty(net, self.alpha, sw_sum)
        with np.errstate(all="ignore"):
            z = net.logits(X_val)
            if self.out_activation_ == "exp":
                if not np.isfinite(z - (np.exp(z) - y_val_encoded)).all():
                    return np.nan  # the Poisson loss overflowed on the validation rows
                return float(_solvers.poisson_loss(y_val_encoded, z, sw_val) + l2)
            if self.out_activation_ == "softmax":
                data, _ = F.softmax_cross_entropy(z, y_val_encoded, sw_val)
            elif self.out_activation_ == "logistic":
                data, _ = F.sigmoid_cross_entropy(z, y_val_encoded, sw_val)
            else:
                data, _ = F.squared_error(z, y_val_encoded, sw_val)
        return float(data * self._data_loss_scale() + l2)


def _warn_max_iter(max_iter):
    warnings.warn(
        "Stochastic Optimizer: Maximum iterations (%d) "
        "reached and the optimization hasn't converged yet." % max_iter,
        ConvergenceWarning,
    )
