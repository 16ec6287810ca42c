"""The NumPy baselines of the training-step benchmarks.

* :class:`LeanMLP` — the training step a competent NumPy user writes for a softmax MLP:
  forward, a numerically stable softmax cross-entropy (mean over the minibatch), backward and
  plain SGD, nothing else (no sample weights, no L2 term, no validation).
* :class:`GemmFloor` — the same step's matrix products alone, through NumPy
  (``np.matmul(..., out=...)`` on preallocated arrays): forward ``a @ W`` for every layer,
  weight gradients ``aᵀ δ`` for every layer, deltas ``δ Wᵀ`` for every layer but the first.
  No training step can beat it on the same BLAS; it is the floor the engine is held to.
"""
from __future__ import annotations

import numpy as np

__all__ = ["LeanMLP", "GemmFloor"]


class LeanMLP:
    """Softmax MLP trained with SGD in plain NumPy, starting from copies of given parameters.

    Parameters
    ----------
    weights, biases : lists of arrays ``W[l]`` (n_in x n_out) and ``b[l]`` (copied).
    activation : "relu" or "logistic" (hidden layers).
    lr : float — SGD learning rate.
    """

    def __init__(self, weights, biases, activation, lr):
        if activation not in ("relu", "logistic"):
            raise ValueError(f"activation must be 'relu' or 'logistic', got {activation!r}")
        self.init = ([w.copy() for w in weights], [b.copy() for b in biases])
        self.relu = activation == "relu"
        self.lr = lr
        self.reset()

    def reset(self):
        """Back to the initial parameters."""
        self.W = [w.copy() for w in self.init[0]]
        self.b = [b.copy() for b in self.init[1]]

    def step(self, x, y):
        """One SGD step on the minibatch ``x`` (float[B, d]) with labels ``y`` (int[B]);
        returns the minibatch's mean cross-entropy."""
        acts = [x]
        for W, b in zip(self.W[:-1], self.b[:-1]):
            z = acts[-1] @ W
            z += b
            if self.relu:
                np.maximum(z, 0, out=z)
            else:
                z = 1.0 / (1.0 + np.exp(-z))
            acts.append(z)
        z = acts[-1] @ self.W[-1]
        z += self.b[-1]
        z -= z.max(axis=1, keepdims=True)  # stable: exp of values <= 0
        p = np.exp(z)
        s = p.sum(axis=1, keepdims=True)
        rows = np.arange(x.shape[0])
        loss = float(np.mean(np.log(s[:, 0]) - z[rows, y]))
        p /= s
        p[rows, y] -= 1.0
        delta = p / x.shape[0]  # dL/dz of the mean loss
        for l in range(len(self.W) - 1, -1, -1):
            a = acts[l]
            grad_w = a.T @ delta
            grad_b = delta.sum(axis=0)
            if l > 0:  # with the old W
                delta = delta @ self.W[l].T
                delta *= (a > 0) if self.relu else a * (1.0 - a)
            self.W[l] -= self.lr * grad_w
            self.b[l] -= self.lr * grad_b
        return loss

    def epoch(self, X, y, order, batch_size):
        """SGD steps over the minibatches ``order[i:i + batch_size]`` (rows gathered)."""
        for i in range(0, order.shape[0], batch_size):
            idx = order[i:i + batch_size]
            self.step(X[idx], y[idx])


class GemmFloor:
    """The matrix products of one training step of a network with weights ``weights``, on
    preallocated arrays, through NumPy.

    The output delta is a fixed random array; the deltas below it are recomputed from it every
    step, so every call does the same products on the same values.
    """

    def __init__(self, x, weights, seed=1):
        rng = np.random.default_rng(seed)
        dtype = x.dtype
        batch = x.shape[0]
        self.x = np.ascontiguousarray(x)
        self.W = [np.ascontiguousarray(w) for w in weights]
        self.acts = [np.empty((batch, w.shape[1]), dtype) for w in self.W]
        self.grads = [np.empty_like(w) for w in self.W]
        self.deltas = [np.empty((batch, w.shape[1]), dtype) for w in self.W]
        self.deltas[-1][...] = rng.random(self.deltas[-1].shape, dtype=dtype)

    def step(self):
        """The step's products: forward, then weight gradients and deltas from the top."""
        mm, W, acts, deltas = np.matmul, self.W, self.acts, self.deltas
        mm(self.x, W[0], out=acts[0])
        for l in range(1, len(W)):
            mm(acts[l - 1], W[l], out=acts[l])
        for l in range(len(W) - 1, 0, -1):
            mm(acts[l - 1].T, deltas[l], out=self.grads[l])
            mm(deltas[l], W[l].T, out=deltas[l - 1])
        mm(self.x.T, deltas[0], out=self.grads[0])

    def run(self, steps):
        for _ in range(steps):
            self.step()
