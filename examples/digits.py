"""Train a 64-64-10 MLP on scikit-learn's digits with fastnn's Network + fit.

Prints the per-epoch loss and validation accuracy, the held-out accuracy, the time per epoch,
and checks that a saved model predicts exactly like the original.  Needs scikit-learn.

Run: python examples/digits.py  (a few seconds; the first run also compiles the kernels)
"""
import os
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import fastnn


def main():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)  # pixels 0..16 -> [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    X_train, X_val, y_train, y_val = train_test_split(X_train, y_train, test_size=0.1,
                                                      random_state=0, stratify=y_train)
    print(f"digits: train {len(X_train)}, validation {len(X_val)}, test {len(X_test)}; "
          f"{fastnn.get_num_threads()} threads")

    net = fastnn.Network([64, 64, 10], activation="relu", output="softmax", dtype="float32",
                         seed=0)
    history = fastnn.fit(net, X_train, y_train, epochs=40, batch_size=32,
                         optimizer=fastnn.Adam(2e-3), seed=0, validation_data=(X_val, y_val))
    for epoch in (1, 2, 5, 10, 20, 30, 40):
        i = epoch - 1
        print(f"epoch {epoch:>2}: loss {history.train_loss[i]:.4f}  "
              f"val_loss {history.val_loss[i]:.4f}  val_accuracy {history.val_accuracy[i]:.4f}")

    net.predict(X_test[:1])  # load the inference kernel before timing it
    t0 = time.perf_counter()
    accuracy = float(np.mean(net.predict(X_test) == y_test))
    predict_ms = (time.perf_counter() - t0) * 1e3
    steady = np.median(history.seconds[1:])  # the first epoch includes compiling (if uncached)
    print(f"test accuracy: {accuracy:.4f} on {len(X_test)} held-out images")
    print(f"time per epoch: {steady * 1e3:.2f} ms ({len(X_train) / steady:,.0f} samples/s); "
          f"first epoch {history.seconds[0]:.2f} s; predicting the test set {predict_ms:.2f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "digits.npz")
        net.save(path)
        back = fastnn.load(path)
        same = np.array_equal(back.predict_proba(X_test), net.predict_proba(X_test))
        print(f"saved and reloaded {path} ({os.path.getsize(path):,} bytes): "
              f"identical predictions: {same}")


if __name__ == "__main__":
    main()
