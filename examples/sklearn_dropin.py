"""The same script with scikit-learn's MLPClassifier and fastnn's: time and accuracy side by side.

fastnn.MLPClassifier takes the same parameters and exposes the same fitted attributes, so
switching is one import.  Both are fitted with identical settings on the same data; the table
shows fit time, predict time and test accuracy.  Needs scikit-learn.

Run: python examples/sklearn_dropin.py  (under a minute)
"""
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SklearnMLP

from fastnn import MLPClassifier as FastnnMLP


def datasets():
    X, y = load_digits(return_X_y=True)
    yield "digits 1797x64, 10 classes", X / 16.0, y
    X, y = make_classification(n_samples=20_000, n_features=50, n_informative=30, n_classes=5,
                               random_state=0)
    yield "synthetic 20000x50, 5 classes", X, y


def run(cls, X_train, X_test, y_train, y_test):
    clf = cls(hidden_layer_sizes=(128,), activation="relu", solver="adam", batch_size=64,
              max_iter=15, random_state=0)
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    accuracy = clf.score(X_test, y_test)
    return fit_s, time.perf_counter() - t0, accuracy, clf


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is kept small on purpose
    # warm-up: compile (or load from cache) fastnn's kernels outside the timings
    run(FastnnMLP, *train_test_split(np.random.rand(400, 4), np.arange(400) % 3, random_state=0))
    print(f"{'data':32}{'estimator':12}{'fit':>10}{'predict':>10}{'accuracy':>10}")
    for name, X, y in datasets():
        split = train_test_split(X, y, test_size=0.25, random_state=0)
        results = {}
        for label, cls in (("sklearn", SklearnMLP), ("fastnn", FastnnMLP)):
            fit_s, pred_s, acc, clf = results[label] = run(cls, *split)
            print(f"{name:32}{label:12}{fit_s:>9.3f}s{pred_s * 1e3:>8.1f}ms{acc:>10.4f}")
        speedup = results["sklearn"][0] / results["fastnn"][0]
        same_shape = all(a.shape == b.shape for a, b in
                         zip(results["sklearn"][3].coefs_, results["fastnn"][3].coefs_))
        print(f"{'':32}{'fit speed-up':12}{speedup:>9.1f}x   (same coefs_ shapes: {same_shape}, "
              f"{results['fastnn'][3].n_iter_} epochs each)")


if __name__ == "__main__":
    main()
