"""The learner's question, run: sigmoid outputs with squared error vs a softmax with cross-entropy.

Two training examples, x1 -> [1, 0] and x2 -> [0, 1], a 2-3-2 network with a sigmoid hidden
layer, full-batch gradient descent.  The script prints

1. the outputs for both inputs after training with each output/loss pair (same initial weights);
2. a gradient check: at the softmax output, dL/dz = p - y equals the softmax Jacobian times
   dL/dp, and the whole network's gradient equals central finite differences;
3. what really gives a stuck [0.5, 0.5]: identical inputs, saturated sigmoid outputs with
   squared error, a learning rate that is too small.

The explanation is docs/softmax.md.  Run: python examples/seed_softmax.py  (a few seconds)
"""
import numpy as np

import fastnn
from fastnn import reference as ref

X = np.array([[1.0, 0.0], [0.0, 1.0]])  # x1, x2
labels = np.array([0, 1])  # x1 -> class 0, x2 -> class 1
Y = np.eye(2)[labels]  # one-hot targets [1, 0] and [0, 1]
SIZES = [2, 3, 2]


def initial_network(output, seed=0):
    # Same seed, sizes and hidden activation -> the same initial weights for both losses.
    return fastnn.Network(SIZES, activation="sigmoid", output=output, dtype="float64", seed=seed)


def train_softmax_ce(X, steps, lr, out_bias=None):
    """fastnn: softmax output, cross-entropy, dL/dz = p - y computed by the fused kernel."""
    net = initial_network("softmax")
    if out_bias is not None:
        net.biases[-1][:] = out_bias
    # batch_size=2 and no shuffling: one full-batch gradient step per epoch
    history = fastnn.fit(net, X, labels, epochs=steps, batch_size=2, shuffle=False,
                         optimizer=fastnn.SGD(lr))
    return net.predict_proba(X), history.train_loss[-1]


def train_sigmoid_mse(X, steps, lr, out_bias=None):
    """The learner's network: sigmoid outputs, L = mean of 1/2 ||p - y||^2, in plain NumPy."""
    net = initial_network("identity")
    W = [w.copy() for w in net.weights]
    b = [v.copy() for v in net.biases]
    if out_bias is not None:
        b[-1][:] = out_bias
    for _ in range(steps):
        a1 = ref.dense_forward(X, W[0], b[0], "logistic")
        p = ref.dense_forward(a1, W[1], b[1], "logistic")
        dp = (p - Y) / len(X)  # dL/dp
        dz = dp * ref.activation_derivative(p, "logistic")  # times sigma'(z) = p (1 - p)
        dW1, db1, d1 = ref.dense_backward(a1, W[1], dz, "logistic")
        dW0, db0, _ = ref.dense_backward(X, W[0], d1, None)
        for param, grad in ((W[1], dW1), (b[1], db1), (W[0], dW0), (b[0], db0)):
            param -= lr * grad
    a1 = ref.dense_forward(X, W[0], b[0], "logistic")
    p = ref.dense_forward(a1, W[1], b[1], "logistic")
    return p, 0.5 * np.mean(np.sum((p - Y) ** 2, axis=1))


def fmt(row):
    return "[" + ", ".join(f"{v:.4f}" for v in row) + "]"


def compare(title, X, steps, lr, out_bias=None):
    print(f"\n{title}\n  (2-3-2, sigmoid hidden layer, lr {lr}, {steps} full-batch steps)")
    print(f"  {'':34}{'output for x1':>18}{'output for x2':>18}{'loss':>9}")
    for name, train in (("sigmoid outputs + squared error", train_sigmoid_mse),
                        ("softmax + cross-entropy", train_softmax_ce)):
        p, loss = train(X, steps, lr, out_bias)
        print(f"  {name:34}{fmt(p[0]):>18}{fmt(p[1]):>18}{loss:>9.4f}")


def gradient_check():
    print("\n2. Gradient check (float64)")
    net = initial_network("softmax")
    # logits of the output layer: z = a W + b, a = sigmoid hidden activations
    a1 = ref.dense_forward(X, net.weights[0], net.biases[0], "logistic")
    z = a1 @ net.weights[1] + net.biases[1]
    p = fastnn.softmax(z)
    loss, dz = fastnn.softmax_cross_entropy(z, labels)  # fused: (p - y) / n
    jvp = fastnn.softmax_backward(p, -Y / p)  # softmax Jacobian^T times dL/dp of -log p_y
    jac = [np.diag(pi) - np.outer(pi, pi) for pi in p]  # the explicit 2x2 Jacobians
    explicit = np.array([J.T @ (-yi / pi) for J, yi, pi in zip(jac, Y, p)])
    print(f"  p = softmax(z) for x1, x2:        {fmt(p[0])} {fmt(p[1])}")
    print(f"  p - y:                            {fmt((p - Y)[0])} {fmt((p - Y)[1])}")
    print(f"  J^T (-y/p), explicit Jacobian:    {fmt(explicit[0])} {fmt(explicit[1])}")
    print(f"  softmax_backward(p, -y/p):        {fmt(jvp[0])} {fmt(jvp[1])}")
    print(f"  n * fused softmax_cross_entropy:  {fmt(2 * dz[0])} {fmt(2 * dz[1])}")
    worst = max(np.abs(explicit - (p - Y)).max(), np.abs(jvp - (p - Y)).max(),
                np.abs(2 * dz - (p - Y)).max())
    print(f"  largest difference from p - y: {worst:.1e}")
    report = fastnn.check_gradients(net, X, labels)
    errs = ", ".join(f"layer {l}: W {r['W']:.1e}, b {r['b']:.1e}" for l, r in enumerate(report))
    print(f"  whole network vs central differences, worst relative error: {errs}")


def main():
    print("The learner's problem: x1 = [1, 0] -> [1, 0], x2 = [0, 1] -> [0, 1]")
    compare("1. Both output/loss pairs learn it (distinct inputs do not cancel)", X, 500, 0.5)
    gradient_check()
    print("\n3. What really produces [0.5, 0.5]")
    same = np.array([[1.0, 0.0], [1.0, 0.0]])
    compare("3a. Identical inputs: the net cannot tell them apart; [0.5, 0.5] is optimal",
            same, 2000, 0.5)
    compare("3b. Saturated outputs (output biases -8, +8): squared error stalls, p(1-p) ~ 0",
            X, 2000, 0.5, out_bias=[-8.0, 8.0])
    compare("3c. Learning rate too small: the weights barely move", X, 500, 0.001)


if __name__ == "__main__":
    main()
