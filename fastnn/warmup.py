"""Cold start: compile (or load from the cache) every kernel once, for both dtypes.

Numba compiles a kernel the first time it is called with new argument types and, with
``cache=True`` (:mod:`fastnn._jit`), writes the machine code to ``__pycache__`` next to the
source or to ``NUMBA_CACHE_DIR``.  A user pays the compile cost once per machine: run
:func:`warmup` (or ``fastnn warmup``) after installing, in a Docker build step, or on one worker
per machine of a cluster, and every later process loads the kernels from the cache.

:func:`warmup` drives every entry point that Python code calls — the training epoch for every
output type (softmax with labels and with probability rows, sigmoid, identity; SGD and Adam;
with and without sample weights), the forward pass, the loss and gradient, the optimizer step
and the public softmax/loss functions — for float32 and float64, on tiny arrays, and reports the
time of each step and how many kernel specialisations were compiled versus loaded from the cache.
With ``sparse=True`` it also compiles the epoch, forward pass and gradient that read a sparse
(CSR, int32 indices as scipy makes them) input.

Compiling is single-threaded, so with both dtypes and more than one usable core each dtype is
compiled in its own ``fastnn warmup --dtype D`` process, at the same time.  Numba writes each
kernel's cache index by reading, extending and replacing it, so two processes that save versions
of one kernel at the same instant can drop one entry; that is why this process then loads every
kernel itself, and compiles (and saves) whatever a worker's entry is missing: when it returns,
every kernel is in the cache and loaded here.
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np

__all__ = ["warmup", "WarmupReport"]

DTYPES = ("float32", "float64")
# (engine output, target kind): every output type of the epoch kernel and both softmax targets
_OUTPUTS = (("softmax", "labels"), ("softmax", "probs"), ("sigmoid", "probs"),
            ("identity", "values"))


@dataclass
class WarmupReport:
    """What :func:`warmup` did.

    Attributes
    ----------
    seconds : float — total wall time.
    steps : list of (name, dtype, seconds) — one entry per entry point and dtype.
    compiled : int — kernel specialisations compiled in this call (cache misses).
    loaded : int — kernel specialisations loaded from the cache (cache hits).
    cache_dir : str — where numba reads and writes the cache (``NUMBA_CACHE_DIR``, else
        ``__pycache__`` next to the kernels, or the user-wide cache when that is read-only).
    dtypes : tuple of str
    """

    seconds: float = 0.0
    steps: list = field(default_factory=list)
    compiled: int = 0
    loaded: int = 0
    cache_dir: str = ""
    dtypes: tuple = DTYPES

    def as_dict(self):
        return {"seconds": self.seconds, "compiled": self.compiled, "loaded": self.loaded,
                "cache_dir": self.cache_dir, "dtypes": list(self.dtypes),
                "steps": [{"name": n, "dtype": d, "seconds": s} for n, d, s in self.steps]}

    def summary(self):
        """One line: total time, compiled vs loaded, cache location."""
        how = "compiled" if self.compiled else "loaded from the cache"
        return (f"fastnn warmup: {self.seconds:.2f} s for {', '.join(self.dtypes)} "
                f"({how}: {self.compiled} compiled, {self.loaded} loaded; cache {self.cache_dir})")

    def __str__(self):
        lines = [self.summary()]
        lines += [f"  {name:<28} {dtype:<8} {sec:8.3f} s" for name, dtype, sec in self.steps]
        return "\n".join(lines)


def _dispatchers():
    """Every compiled kernel of :mod:`fastnn.kernels` (numba dispatchers)."""
    import fastnn.kernels as pkg
    from numba.core.registry import CPUDispatcher

    found = []
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == mod.__name__:
                found.append(obj)
    return found


def _cache_counts(dispatchers):
    hits = misses = 0
    for d in dispatchers:
        stats = getattr(d, "stats", None)
        if stats is not None:
            hits += sum(stats.cache_hits.values())
            misses += sum(stats.cache_misses.values())
    return hits, misses


def cache_dir():
    """Where numba keeps fastnn's compiled kernels: ``NUMBA_CACHE_DIR``, else the directory it
    chose for them (``__pycache__`` next to the kernels or, when that is not writable, the
    user-wide cache)."""
    from numba.core import config

    import fastnn.kernels as pkg
    from fastnn._hooks import cache_path

    if config.CACHE_DIR:
        return config.CACHE_DIR
    paths = {cache_path(d) for d in _dispatchers()} - {None}
    return paths.pop() if len(paths) == 1 else os.path.join(os.path.dirname(pkg.__file__),
                                                            "__pycache__")


def _targets(kind, n, k, dtype, rng):
    if kind == "labels":
        return rng.integers(0, k, n)
    if kind == "probs":
        t = rng.random((n, k)).astype(dtype)
        return t / t.sum(axis=1, keepdims=True)
    return rng.normal(size=(n, k)).astype(dtype)


def _engine_kernels(dtype, rng, step):
    """Epoch kernel for every output type, forward, loss and gradient, optimizer steps."""
    from fastnn.network import Network
    from fastnn.optim import SGD, Adam
    from fastnn.train import fit

    n, d, k = 13, 3, 2  # 13 rows, batch 4: full batches and a partial last one
    X = rng.normal(size=(n, d)).astype(dtype)
    for output, kind in _OUTPUTS:
        def epoch(output=output, kind=kind):
            net = Network([d, 4, k], activation="relu", output=output, dtype=dtype, seed=0)
            y = _targets(kind, n, k, dtype, rng)
            sw = np.linspace(0.5, 1.5, n)
            fit(net, X, y, epochs=1, batch_size=4, optimizer=SGD(0.01, momentum=0.9), seed=0)
            fit(net, X, y, epochs=1, batch_size=4, optimizer=Adam(1e-3), seed=0,
                sample_weight=sw, alpha=1e-4)
            net.forward(X)
            net.loss_and_grad(X, y, alpha=1e-4)
            SGD(0.01).step(net.params, np.zeros_like(net.params))
            Adam(1e-3).step(net.params, np.zeros_like(net.params))

        step(f"epoch+forward ({output}/{kind})", epoch)

    def poisson():  # MLPRegressor(loss="poisson"): an identity network trained as exp + deviance
        from fastnn._engine import OUT_POISSON, run_epoch, weights_array

        net = Network([d, 4, k], activation="relu", output="identity", dtype=dtype, seed=0)
        y = np.abs(_targets("values", n, k, dtype, rng))
        run_epoch(net, X, y, Adam(1e-3), batch_size=4, order=np.arange(n), _output="exp")
        grad = np.empty_like(net.params)
        net.loss_grad_into(X, y, weights_array(None, net.dtype), 1e-4, grad,
                           out_kind=OUT_POISSON)

    step("epoch+loss (poisson)", poisson)


def _sparse_kernels(dtype, rng):
    """The kernels that read CSR input: epochs (plain SGD, momentum, Adam with L2 and sample
    weights), forward, loss and gradient, for a softmax with labels."""
    import scipy.sparse as sp

    from fastnn.network import Network
    from fastnn.optim import SGD, Adam
    from fastnn.train import fit

    n, d, k = 13, 5, 2
    X = sp.random(n, d, density=0.4, format="csr", random_state=0, dtype=dtype)
    y = _targets("labels", n, k, dtype, rng)
    net = Network([d, 4, k], activation="relu", dtype=dtype, seed=0)
    fit(net, X, y, epochs=1, batch_size=4, optimizer=SGD(0.01), seed=0)
    fit(net, X, y, epochs=1, batch_size=4, optimizer=SGD(0.01, momentum=0.9), seed=0)
    fit(net, X, y, epochs=1, batch_size=4, optimizer=Adam(1e-3), seed=0,
        sample_weight=np.linspace(0.5, 1.5, n), alpha=1e-4)
    net.forward(X)
    net.loss_and_grad(X, y, alpha=1e-4)


def _functional(dtype, rng):
    from fastnn import functional as F

    z = rng.normal(size=(5, 3)).astype(dtype)
    labels = rng.integers(0, 3, 5)
    probs = F.softmax(z)
    F.log_softmax(z)
    F.softmax_backward(probs, z)
    F.softmax_cross_entropy(z, labels)
    F.softmax_cross_entropy(z, probs, sample_weight=np.ones(5))
    F.sigmoid_cross_entropy(z, (probs > 0.3).astype(dtype))
    F.squared_error(z, probs)


def usable_cores():
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


#: a worker's program: ``fastnn warmup`` of the fastnn in ``sys.argv[1]``.  Not ``-m fastnn``,
#: which puts the working directory first on ``sys.path``: a ``fastnn`` there (a checkout of
#: another version) would run instead of this one and compile its own kernels in vain.
_WORKER = ("import sys; sys.path[:] = [sys.argv.pop(1)] + [p for p in sys.path if p]; "
           "from fastnn.cli import main; sys.exit(main())")


def _start_worker(dtype, sparse):
    """A ``fastnn warmup --dtype dtype`` process of this very fastnn (a checkout on a
    ``sys.path`` entry added at run time too), writing the same cache as this one."""
    from numba.core import config

    env = dict(os.environ)
    if config.CACHE_DIR:
        env["NUMBA_CACHE_DIR"] = config.CACHE_DIR
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = [sys.executable, "-c", _WORKER, here, "warmup", "--dtype", dtype, "--jobs", "1",
            "--json"]
    return subprocess.Popen(args + (["--sparse"] if sparse else []), env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _failed(dtype, why, stacklevel):
    import warnings

    warnings.warn(f"fastnn warmup: the {dtype} worker process failed ({why}); compiling "
                  f"{dtype} in this process instead", RuntimeWarning, stacklevel=stacklevel)


def _worker_report(dtype, proc):
    """A worker's counts and steps (from its JSON report), or None (with a warning) when it
    failed: this process then compiles that dtype itself."""
    out, err = proc.communicate()
    try:
        if proc.returncode:
            raise ValueError(f"exit status {proc.returncode}: {err.strip()[-500:]}")
        # the report is the last object that starts a line: numba's debugging output
        # (NUMBA_DEBUG_CACHE and the like) goes to the same stdout before it
        raw = json.loads(out[out.rfind("\n{\n") + 1:])
        return {"compiled": int(raw["compiled"]), "loaded": int(raw["loaded"]),
                "steps": [(str(s["name"]), str(s["dtype"]), float(s["seconds"]))
                          for s in raw["steps"]]}
    except (ValueError, KeyError, TypeError) as exc:
        _failed(dtype, exc, stacklevel=5)
        return None


def _run_workers(dtypes, sparse):
    """One worker process per dtype, at the same time: ``{dtype: its report or None}`` (None:
    it failed, with a warning).  No workers without a disk cache (they would compile in vain)
    or without an executable (an embedded interpreter)."""
    from fastnn._jit import caching

    if not (caching() and sys.executable):
        return {}
    workers, procs = {}, {}
    try:
        for d in dtypes:
            try:
                procs[d] = _start_worker(d, sparse)
            except OSError as exc:  # (an executable that is gone or not a program)
                _failed(d, f"cannot start {sys.executable}: {exc}", stacklevel=4)
        for d, p in procs.items():
            workers[d] = _worker_report(d, p)
    finally:  # interrupted: no worker outlives the call
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    return workers


def warmup(dtypes=DTYPES, verbose=False, sparse=False, jobs=None):
    """Compile (or load from the cache) every fastnn kernel for ``dtypes``; return a report.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}
        Defaults to both.
    verbose : bool
        Print the report (one line per step) when done.
    sparse : bool
        Also compile the kernels that read sparse (CSR) input (``fastnn warmup --sparse``).
    jobs : int or None
        Processes that compile at once, one dtype each (at most ``len(dtypes)``); ``None``: the
        usable cores.  ``1`` compiles everything in this process.

    Returns
    -------
    WarmupReport
        ``seconds`` (total), ``steps`` (per entry point and dtype; with worker processes, the
        workers' steps, which ran at the same time, then this process's check that every
        kernel loads), ``compiled`` / ``loaded`` (kernel specialisations compiled now vs
        loaded from the cache, in every process) and ``cache_dir``.
    """
    if isinstance(dtypes, str):
        dtypes = (dtypes,)
    dtypes = tuple(np.dtype(d).name for d in dtypes)
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not dtypes:
        raise ValueError(f"dtypes must be a non-empty subset of {DTYPES}, got {dtypes!r}")
    if jobs is None:
        jobs = usable_cores()
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)):
        raise TypeError(f"jobs must be an int or None, got {type(jobs).__name__}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    report = WarmupReport(dtypes=dtypes, cache_dir=cache_dir())
    t_start = time.perf_counter()
    dispatchers = _dispatchers()
    workers = _run_workers(dtypes, sparse) if min(jobs, len(dtypes)) > 1 else {}
    t_here = time.perf_counter()
    hits0, misses0 = _cache_counts(dispatchers)
    rng = np.random.default_rng(0)
    here = []

    for dtype in dtypes:
        def step(name, fn, dtype=dtype):
            t0 = time.perf_counter()
            fn()
            here.append((name, dtype, time.perf_counter() - t0))

        _engine_kernels(dtype, rng, step)
        step("functional (softmax, losses)", lambda dtype=dtype: _functional(dtype, rng))
        if sparse:
            step("sparse input (epochs, forward, gradient)",
                 lambda dtype=dtype: _sparse_kernels(dtype, rng))

    hits, misses = _cache_counts(dispatchers)
    report.loaded, report.compiled = hits - hits0, misses - misses0
    done = {d: r for d, r in workers.items() if r is not None}
    if done:  # this process only loaded what the workers compiled, and compiled what was lost
        report.loaded = sum(r["loaded"] for r in done.values())
        report.compiled += sum(r["compiled"] for r in done.values())
        report.steps = [row for d in dtypes if d in done for row in done[d]["steps"]]
        report.steps += [row for row in here if row[1] not in done]
        report.steps.append(("check: every kernel loads here", "+".join(dtypes),
                             time.perf_counter() - t_here))
    else:
        report.steps = here
    report.seconds = time.perf_counter() - t_start
    if verbose:
        print(report)
    return report


class _CallableModule(types.ModuleType):
    """``fastnn.warmup`` names both this module and :func:`warmup`; importing the module
    (``from fastnn.warmup import WarmupReport``) rebinds ``fastnn.warmup`` to it, so the module
    is callable too: ``fastnn.warmup(...)`` always runs :func:`warmup`."""

    def __call__(self, *args, **kwargs):
        return warmup(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
