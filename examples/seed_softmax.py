"""The learner's [0.5, 0.5], reproduced, diagnosed, then fixed one change at a time.

Two training examples, x1 = [1, 0] -> [1, 0] and x2 = [0, 1] -> [0, 1], a 2-3-2 network with a
sigmoid hidden layer, plain gradient descent.  The learner's own setup: all weights start at
zero, sigmoid outputs with squared error, the gradients of both examples averaged into one step.
The script prints

1. that setup in NumPy and in fastnn: both output exactly [0.5, 0.5] for both inputs;
2. what fastnn.diagnose measures on it, and what check_gradients says;
3. one change at a time: what fixes it (random initial weights; per-example or shuffled
   updates) and what does not (softmax + cross-entropy; a larger learning rate), then two other
   ways to get a stuck output (saturated sigmoid outputs with squared error; a learning rate
   that is too small);
4. a gradient check of both NumPy arms against central differences, and of a planted bug.

The NumPy sigmoid arm and softmax arm differ in one line, the output delta dz (see backprop).
The explanation is docs/softmax.md.  Run: python examples/seed_softmax.py [--plot DIR]
(--plot writes seed_softmax_losses.png and seed_softmax_gradients.png into DIR).
"""
import argparse
import os
import warnings

import numpy as np

import fastnn

X = np.array([[1.0, 0.0], [0.0, 1.0]])  # x1, x2: one row per example
Y = np.eye(2)  # targets [1, 0] and [0, 1]
LABELS = np.array([0, 1])
SIZES = [2, 3, 2]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def backprop(params, X, Y, output):
    """Loss and gradient of the 2-3-2 network; rows are examples, W is n_in x n_out."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    n = X.shape[0]
    a1 = sigmoid(X @ W1 + b1)  # hidden activations [n, 3]
    z = a1 @ W2 + b2  # output logits [n, 2]
    if output == "sigmoid":  # the learner's network: sigmoid outputs, L = sum ||p - y||^2 / 2n
        P = sigmoid(z)
        loss = 0.5 * np.sum((P - Y) ** 2) / n
        dz = (P - Y) * P * (1 - P) / n  # dL/dp times sigma'(z) = p (1 - p)
    else:  # softmax outputs, cross-entropy L = -sum y log p / n
        P = softmax(z)
        loss = -np.sum(Y * np.log(P)) / n
        dz = (P - Y) / n  # the one line that changes: no sigma'(z) at the output
    d1 = (dz @ W2.T) * a1 * (1 - a1)  # the hidden layer keeps its own sigma'(z) = a (1 - a)
    grad = {"W1": X.T @ d1, "b1": d1.sum(axis=0), "W2": a1.T @ dz, "b2": dz.sum(axis=0)}
    return loss, grad


def start(zero):
    """All-zero weights (the learner's start), or fastnn's random initialisation (seed 0)."""
    net = fastnn.Network(SIZES, activation="sigmoid", output="softmax", dtype="float64", seed=0)
    W1, W2 = net.weights
    b1, b2 = net.biases
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    return {k: np.zeros_like(v) if zero else v.copy() for k, v in params.items()}


def train(output, zero=True, steps=2000, lr=0.5, batch=2, shuffle=False, out_bias=None):
    """Gradient descent in NumPy; returns (outputs for x1 and x2, loss per epoch)."""
    params = start(zero)
    if out_bias is not None:
        params["b2"][:] = out_bias
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        order = rng.permutation(2) if shuffle else np.arange(2)
        for i in range(0, 2, batch):  # batch=2: both examples averaged into one step
            rows = order[i:i + batch]
            _, grad = backprop(params, X[rows], Y[rows], output)
            for k in params:
                params[k] -= lr * grad[k]
        losses.append(backprop(params, X, Y, output)[0])
    a1 = sigmoid(X @ params["W1"] + params["b1"])
    z = a1 @ params["W2"] + params["b2"]
    return (sigmoid(z) if output == "sigmoid" else softmax(z)), np.array(losses)


def fmt(row):
    return "[" + ", ".join(f"{v:.3f}" for v in row) + "]"


def show(name, P, losses):
    print(f"  {name:52}{fmt(P[0]):>16}{fmt(P[1]):>16}{losses[-1]:>9.4f}")


def header():
    print(f"  {'':52}{'output for x1':>16}{'output for x2':>16}{'loss':>9}")


def reproduce():
    print("1. The learner's setup: zero initial weights, sigmoid outputs + squared error,")
    print("   both examples' gradients averaged, 2000 steps of learning rate 0.5")
    header()
    P, losses = train("sigmoid")
    show("NumPy", P, losses)
    net = fastnn.Network(SIZES, activation="sigmoid", output="sigmoid", loss="squared_error",
                         dtype="float64")
    net.params[:] = 0
    hist = fastnn.fit(net, X, Y, epochs=2000, batch_size=2, shuffle=False,
                      optimizer=fastnn.SGD(0.5))
    show("fastnn, output='sigmoid', loss='squared_error'", net.forward(X), hist.train_loss)
    return net


def diagnose(net):
    print("\n2. What fastnn.diagnose measures on that network\n")
    print(fastnn.diagnose(net, X, Y, optimizer=fastnn.SGD(0.5), batch_size=2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = fastnn.check_gradients(lambda p: backprop(p, X, Y, "sigmoid"), start(True))
    print(f"\n  check_gradients of the NumPy backprop at the zero start: {report}")
    print(f"  warning: {str(caught[0].message)[:86]}...")


def fixes(curves):
    print("\n3. One change at a time (same 2-3-2 network, same number of steps)")
    header()
    runs = [
        ("unchanged: zero start, averaged", "sigmoid", {}),
        ("random initial weights", "sigmoid", dict(zero=False)),
        ("per-example updates (batch of 1)", "sigmoid", dict(batch=1)),
        ("shuffled minibatches of 1", "sigmoid", dict(batch=1, shuffle=True)),
        ("softmax + cross-entropy (zero start): not a fix", "softmax", {}),
        ("learning rate 5 (zero start): not a fix", "sigmoid", dict(lr=5.0)),
        ("softmax + cross-entropy, random start", "softmax", dict(zero=False)),
    ]
    for name, output, kw in runs:
        P, losses = train(output, **kw)
        show(name, P, losses)
        curves[name] = (output, losses)
    print("\n   Two other ways to a stuck output (random start):")
    for name, output, kw in [
        ("saturated outputs (biases -8, +8), squared error", "sigmoid", dict(out_bias=[-8, 8])),
        ("saturated outputs (biases -8, +8), softmax + CE", "softmax", dict(out_bias=[-8, 8])),
        ("learning rate 0.001, 500 steps, softmax + CE", "softmax", dict(lr=0.001, steps=500)),
    ]:
        P, losses = train(output, zero=False, **kw)
        show(name, P, losses)
        curves[name] = (output, losses)


def gradient_check():
    print("\n4. Gradient check of the NumPy backprop (worst relative error per block)")
    params = start(False)
    for output in ("sigmoid", "softmax"):
        report = fastnn.check_gradients(lambda p: backprop(p, X, Y, output), params)
        print(f"  {output:8} arm:   " + "  ".join(f"{k} {v:.1e}" for k, v in report.items()))

    def averaged_first(p):  # a planted bug: activations and deltas averaged, then multiplied
        loss, grad = backprop(p, X, Y, "softmax")
        a1 = sigmoid(X @ p["W1"] + p["b1"])
        dz = (softmax(a1 @ p["W2"] + p["b2"]) - Y) / len(X)
        grad["W2"] = np.outer(a1.mean(axis=0), dz.sum(axis=0))
        return loss, grad

    report = fastnn.check_gradients(averaged_first, params)
    print("  planted bug:    " + "  ".join(f"{k} {v:.1e}" for k, v in report.items()))


def plot(curves, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharex=True)
    titles = {"sigmoid": "sigmoid outputs + squared error", "softmax": "softmax + cross-entropy"}
    for ax, output in zip(axes, ("sigmoid", "softmax")):
        runs = [(name, losses) for name, (out, losses) in curves.items() if out == output]
        colors = plt.cm.tab10(np.arange(len(runs)))
        for (name, losses), color in zip(runs, colors):
            stuck = losses[-1] > 0.5 * losses[0]  # dashed: the loss never got anywhere
            ax.plot(np.arange(1, len(losses) + 1), losses, label=name, lw=2, color=color,
                    ls="--" if stuck else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step (one update of both examples, or two of one)")
        ax.set_ylabel("training loss (both examples)")
        ax.set_title(titles[output])
        ax.legend(fontsize=8, loc="lower left")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("2-3-2 network on x1 -> [1, 0], x2 -> [0, 1]: dashed runs stay stuck")
    losses_png = os.path.join(folder, "seed_softmax_losses.png")
    fig.tight_layout()
    fig.savefig(losses_png, dpi=110)
    plt.close(fig)

    p = np.linspace(0.001, 0.999, 500)  # probability given to the true class (y = 1)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(p, np.abs((p - 1) * p * (1 - p)), label="sigmoid + squared error: |(p - y) p (1 - p)|")
    ax.plot(p, np.abs(p - 1), label="softmax + cross-entropy: |p - y|")
    ax.set_xlabel("p, the output for the true class (target y = 1)")
    ax.set_ylabel("|dL/dz| for that output")
    ax.set_title("The output gradient: it vanishes when confidently wrong (p -> 0) only\n"
                 "with sigmoid + squared error")
    ax.legend()
    ax.grid(True, alpha=0.3)
    grad_png = os.path.join(folder, "seed_softmax_gradients.png")
    fig.tight_layout()
    fig.savefig(grad_png, dpi=110)
    plt.close(fig)
    print(f"\nwrote {losses_png} and {grad_png}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", metavar="DIR", help="write the two PNGs into DIR")
    args = parser.parse_args(argv)
    if args.plot and not os.path.isdir(args.plot):
        parser.error(f"--plot: {args.plot} is not a folder")
    curves = {}
    net = reproduce()
    diagnose(net)
    fixes(curves)
    gradient_check()
    if args.plot:
        plot(curves, args.plot)


if __name__ == "__main__":
    main()
