"""Optimizer kernels vs scikit-learn's update rules; optimizer objects and their validation."""
import numpy as np
import pytest
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

import fastnn
from fastnn import reference as ref


def _run(opt, ref_opt, n, dtype, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=n).astype(dtype)
    rp = [p.copy()]
    for _ in range(steps):
        g = rng.normal(size=n).astype(dtype)
        opt.step(p, g)
        ref_opt(rp, [g])
    return p, rp[0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [37, (1 << 17) + 5])
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_matches_scikit_learn(momentum, nesterov, n, dtype):
    opt = fastnn.SGD(lr=0.05, momentum=momentum, nesterov=nesterov)
    sk = None

    def sk_step(params, grads):
        nonlocal sk
        if sk is None:
            sk = SGDOptimizer(params, learning_rate_init=0.05, momentum=momentum,
                              nesterov=nesterov)
        sk.update_params(params, grads)

    p, rp = _run(opt, sk_step, n, dtype)
    tol = 1e-6 if dtype == "float32" else 1e-14
    np.testing.assert_allclose(p, rp, rtol=tol, atol=tol)
    assert opt.t == 3 and p.dtype == dtype


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [37, (1 << 17) + 5])
def test_adam_matches_scikit_learn(n, dtype):
    opt = fastnn.Adam(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-7)
    sk = None

    def sk_step(params, grads):
        nonlocal sk
        if sk is None:
            sk = AdamOptimizer(params, learning_rate_init=0.01, beta_1=0.8, beta_2=0.99,
                               epsilon=1e-7)
        sk.update_params(params, grads)

    p, rp = _run(opt, sk_step, n, dtype, steps=4)
    tol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(p, rp, rtol=tol, atol=tol)
    assert opt.t == 4


def test_adamw_decoupled_decay():
    opt = fastnn.AdamW(lr=0.01, weight_decay=0.5)
    r = ref.ReferenceAdam(lr=0.01, weight_decay=0.5)
    p, rp = _run(opt, r.step, 50, "float64")
    np.testing.assert_allclose(p, rp, rtol=1e-13)
    # with a zero gradient only the decay acts on the first step: p * (1 - lr wd)
    opt = fastnn.AdamW(lr=0.1, weight_decay=0.5)
    q = np.ones(4)
    opt.step(q, np.zeros(4))
    np.testing.assert_allclose(q, 0.95)


def test_lr_is_mutable_and_reset_clears_state():
    opt = fastnn.SGD(lr=0.1, momentum=0.5)
    p = np.zeros(3)
    opt.step(p, np.ones(3))
    np.testing.assert_allclose(p, -0.1)
    opt.lr = 0.2
    opt.step(p, np.ones(3))  # v = 0.5 * -0.1 - 0.2 = -0.25
    np.testing.assert_allclose(p, -0.35)
    opt.reset()
    assert opt.t == 0
    opt.step(p, np.ones(3))  # velocity forgotten: v = -0.2
    np.testing.assert_allclose(p, -0.55)
    opt.step(np.zeros(5), np.ones(5))  # another size: state re-allocated, t restarts
    assert opt.t == 1


@pytest.mark.parametrize("make,match", [
    (lambda: fastnn.SGD(lr=0.0), "lr must be in"),
    (lambda: fastnn.SGD(lr=float("nan")), "lr must be a finite"),
    (lambda: fastnn.SGD(momentum=1.0), "momentum"),
    (lambda: fastnn.SGD(momentum=-0.1), "momentum"),
    (lambda: fastnn.Adam(beta1=1.0), "beta1"),
    (lambda: fastnn.Adam(beta2=-1), "beta2"),
    (lambda: fastnn.Adam(eps=0), "eps"),
    (lambda: fastnn.AdamW(weight_decay=-1), "weight_decay"),
    (lambda: fastnn.optim.InvScaling(power_t=-1), "power_t"),
    (lambda: fastnn.optim.Adaptive(n_iter_no_change=0), "n_iter_no_change"),
])
def test_optimizer_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_setting_a_bad_lr_raises():
    opt = fastnn.Adam()
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0
    assert "Adam(lr=0.001" in repr(opt)


@pytest.mark.parametrize("make", [lambda: fastnn.SGD(1.0), lambda: fastnn.SGD(0.1, momentum=0.9),
                                  lambda: fastnn.Adam()])
def test_step_validates_params_and_grad(make):
    opt = make()
    with pytest.raises(ValueError, match=r"grad must have the shape of params \(8,\), got \(3,\)"):
        opt.step(np.zeros(8), np.ones(3))
    with pytest.raises(TypeError, match="grad must have the dtype of params \\(float64\\)"):
        opt.step(np.zeros(8), np.ones(8, dtype=np.float32))
    with pytest.raises(TypeError, match="params must be a writeable C-contiguous 1-D float32"):
        opt.step(np.zeros(8, dtype=np.int64), np.ones(8, dtype=np.int64))
    with pytest.raises(TypeError, match="params must be"):
        opt.step(np.zeros((2, 4)), np.ones((2, 4)))
    with pytest.raises(TypeError, match="params must be"):
        opt.step(np.zeros(16)[::2], np.ones(8))
    with pytest.raises(TypeError, match="params must be"):
        opt.step([0.0, 0.0], np.ones(2))
    assert opt.t == 0
    p = np.zeros(8)
    opt.step(p, np.ones(8)[::-1])  # a non-contiguous grad is fine
    assert opt.t == 1 and np.all(p < 0)


def test_momentum_set_after_construction_is_used():
    X = np.random.default_rng(0).normal(size=(200, 4))
    y = (X[:, 0] > X[:, 1]).astype(np.int64)

    def train(opt):
        net = fastnn.Network([4, 8, 2], dtype="float64", seed=0)
        fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=opt, seed=1)
        return net.params

    late = fastnn.SGD(0.05)
    late.momentum = 0.9
    np.testing.assert_array_equal(train(late), train(fastnn.SGD(0.05, momentum=0.9)))
    assert not np.array_equal(train(fastnn.SGD(0.05)), train(fastnn.SGD(0.05, momentum=0.9)))
    # and back: momentum 0 needs no velocity, a step is plain SGD
    late.momentum = 0.0
    p = np.zeros(3)
    late.step(p, np.ones(3))
    np.testing.assert_allclose(p, -0.05)


def test_a_reused_optimizer_starts_afresh_on_every_new_network():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, 40)

    def train(seed, opt):
        net = fastnn.Network([4, 6, 3], activation="tanh", dtype="float64", seed=seed)
        fastnn.fit(net, X, y, epochs=3, batch_size=8, optimizer=opt, seed=seed)
        return net

    shared = fastnn.Adam(0.05)
    for seed in range(3):  # the same shape every time: only the network's identity differs
        net = train(seed, shared)
        assert shared.t == 15  # restarted at 0 for this network: 3 epochs x 5 minibatches
        assert net.params.tobytes() == train(seed, fastnn.Adam(0.05)).params.tobytes()
    # the same network keeps its state (warm restart)
    fastnn.fit(net, X, y, epochs=1, batch_size=8, optimizer=shared, seed=0)
    assert shared.t == 20


def test_pickled_state_is_adopted_by_the_unpickled_network():
    import pickle

    opt = fastnn.SGD(lr=0.1, momentum=0.5)
    p = np.zeros(3)
    opt.step(p, np.ones(3))
    opt2, p2 = pickle.loads(pickle.dumps((opt, p)))
    opt.step(p, np.ones(3))
    opt2.step(p2, np.ones(3))  # the velocity travelled with the pickle
    assert opt2.t == 2 and p2.tolist() == p.tolist()
    opt2.step(np.zeros(3), np.ones(3))  # then another buffer: afresh
    assert opt2.t == 1
