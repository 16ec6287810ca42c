"""fastnn.warmup(): every entry point for both dtypes, a report of what it compiled or loaded."""
import importlib
import subprocess
import sys

import numpy as np
import pytest

import fastnn

W = importlib.import_module("fastnn.warmup")


@pytest.mark.slow  # on a cold cache it compiles every kernel for both dtypes (~1 min)
def test_warmup_covers_both_dtypes_and_every_output(capsys):
    report = fastnn.warmup(verbose=True)
    assert isinstance(report, W.WarmupReport)
    assert report.dtypes == ("float32", "float64")
    names = {(name, dtype) for name, dtype, _ in report.steps}
    for dtype in ("float32", "float64"):
        for output, kind in W._OUTPUTS:
            assert (f"epoch+forward ({output}/{kind})", dtype) in names
        assert ("functional (softmax, losses)", dtype) in names
    # (with one worker process per dtype, the dtypes' steps ran at the same time)
    for dtype in ("float32", "float64"):
        assert report.seconds >= sum(s for _, d, s in report.steps if d == dtype) > 0
    # every kernel this process used came from the cache or was compiled now (and is cached now)
    assert report.compiled + report.loaded > 0 or all(
        d.signatures for d in W._dispatchers() if d.__name__ == "train_epochs")
    out = capsys.readouterr().out
    assert out.startswith("fastnn warmup: ") and "float64" in out
    d = report.as_dict()
    assert set(d) == {"seconds", "compiled", "loaded", "cache_dir", "dtypes", "steps"}
    assert report.cache_dir


def test_a_second_warmup_compiles_nothing():
    fastnn.warmup()
    again = fastnn.warmup()
    assert again.compiled == 0
    assert "0 compiled" in again.summary()


def test_warmup_compiled_the_epoch_kernels_for_both_dtypes():
    from fastnn.kernels import engine

    fastnn.warmup()
    for kernel, params_arg in ((engine.train_epochs, 5), (engine.loss_grad, 3),
                               (engine.forward, 3)):
        dtypes = {sig[params_arg].dtype.name for sig in kernel.signatures}
        assert {"float32", "float64"} <= dtypes, kernel


def test_one_dtype_and_bad_dtypes():
    report = fastnn.warmup(dtypes="float32")
    assert report.dtypes == ("float32",)
    assert {d for _, d, _ in report.steps} == {"float32"}
    with pytest.raises(ValueError, match=r"dtypes must be a non-empty subset of \('float32', "
                                         r"'float64'\), got \('float16',\)"):
        fastnn.warmup(dtypes=[np.float16])
    with pytest.raises(ValueError, match="dtypes must be a non-empty subset"):
        fastnn.warmup(dtypes=())


@pytest.mark.slow  # a subprocess
def test_fastnn_warmup_stays_callable_after_importing_the_module():
    code = ("from fastnn.warmup import WarmupReport; import fastnn; "
            "r = fastnn.warmup(dtypes='float64'); assert isinstance(r, WarmupReport); "
            "print(r.dtypes)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "('float64',)" in out.stdout


def test_cli_warmup(capsys):
    from fastnn import cli

    assert cli.main(["warmup", "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fastnn warmup: ") and "float32" in out and "float64" not in out
    assert cli.main(["warmup", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["dtypes"] == ["float32", "float64"] and report["compiled"] == 0


def test_sparse_warmup_compiles_the_csr_kernels():
    """``warmup(sparse=True)`` leaves the engine's entry points compiled for CSR input (a
    tuple of arrays as the input), so that a later sparse fit compiles nothing; without it,
    warmup never touches them."""
    from numba import types

    from fastnn.kernels import engine

    def csr_dtypes(kernel, params_arg):
        """dtypes of the kernel's versions whose input ``x`` is a CSR tuple (``forward`` takes
        ``x`` first; the others a ``data`` tuple that starts with it)."""
        def x_of(sig):
            return sig[0] if kernel is engine.forward else sig[0][0]
        return {sig[params_arg].dtype.name for sig in kernel.signatures
                if isinstance(x_of(sig), types.BaseTuple)}

    report = fastnn.warmup(dtypes="float32", sparse=True)
    assert ("sparse input (epochs, forward, gradient)", "float32") in \
        {(n, d) for n, d, _ in report.steps}
    assert "float32" in csr_dtypes(engine.train_epochs, 5)
    assert "float32" in csr_dtypes(engine.loss_grad, 3)
    assert "float32" in csr_dtypes(engine.forward, 3)
    again = fastnn.warmup(dtypes="float32", sparse=True)
    assert again.compiled == 0
    plain = fastnn.warmup(dtypes="float32")
    assert not any("sparse" in n for n, _, _ in plain.steps)


def test_jobs_is_checked():
    with pytest.raises(TypeError, match="jobs must be an int or None, got float"):
        fastnn.warmup(jobs=2.0)
    with pytest.raises(TypeError, match="jobs must be an int or None, got bool"):
        fastnn.warmup(jobs=True)
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        fastnn.warmup(jobs=0)


def test_one_job_compiles_in_this_process(monkeypatch):
    def no_worker(*args):
        raise AssertionError("jobs=1 started a worker process")

    monkeypatch.setattr(W, "_start_worker", no_worker)
    report = fastnn.warmup(jobs=1)
    assert report.seconds >= sum(s for _, _, s in report.steps) > 0
    assert not any(n.startswith("check:") for n, _, _ in report.steps)


def test_no_workers_without_a_disk_cache(monkeypatch):
    """Kernels that cannot be cached (a read-only install) are compiled here: a worker's
    compile would be lost with it."""
    import fastnn._jit

    def no_worker(*args):
        raise AssertionError("a worker process was started without a disk cache")

    monkeypatch.setattr(W, "_start_worker", no_worker)
    monkeypatch.setattr(fastnn._jit, "_warned", True)
    assert not fastnn._jit.caching()
    report = fastnn.warmup(jobs=2)
    assert not any(n.startswith("check:") for n, _, _ in report.steps)


def test_the_worker_imports_this_fastnn(monkeypatch):
    """A worker runs the fastnn of this fastnn's directory, with the cache directory."""
    import os

    seen = {}

    class Recorder:
        def __init__(self, args, env, **kwargs):
            seen["args"], seen["env"] = args, env

    monkeypatch.setattr(subprocess, "Popen", Recorder)
    W._start_worker("float64", True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    assert seen["args"][1:] == ["-c", W._WORKER, root, "warmup", "--dtype", "float64", "--jobs",
                                "1", "--json", "--sparse"]
    from numba.core import config
    if config.CACHE_DIR:
        assert seen["env"]["NUMBA_CACHE_DIR"] == config.CACHE_DIR


@pytest.mark.slow  # a worker process (loading one dtype from the cache the tests above filled)
def test_a_fastnn_in_the_working_directory_does_not_run_as_the_worker(tmp_path, monkeypatch):
    """``python -m fastnn`` would import the ``fastnn`` of the working directory (a checkout
    of another version) before this one; the worker is this fastnn."""
    shadow = tmp_path / "fastnn"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "__main__.py").write_text(
        "print('{\"compiled\": 0, \"loaded\": 0, \"steps\": [{\"name\": \"shadow\", "
        "\"dtype\": \"float32\", \"seconds\": 0.0}]}')")
    monkeypatch.chdir(tmp_path)
    report = W._worker_report("float32", W._start_worker("float32", False))
    names = {(n, d) for n, d, _ in report["steps"]}
    assert ("shadow", "float32") not in names
    assert ("epoch+forward (softmax/labels)", "float32") in names


@pytest.mark.parametrize("executable", ["", None])
def test_no_workers_without_a_python_executable(monkeypatch, executable):
    """An embedded interpreter may have no ``sys.executable``: everything is compiled here."""
    def no_worker(*args):
        raise AssertionError("a worker process was started without an executable")

    monkeypatch.setattr(W, "_start_worker", no_worker)
    monkeypatch.setattr(sys, "executable", executable)
    report = fastnn.warmup(jobs=2)
    assert {d for _, d, _ in report.steps} == {"float32", "float64"}
    assert not any(n.startswith("check:") for n, _, _ in report.steps)


def test_a_worker_that_cannot_start_is_compiled_here(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    with pytest.warns(RuntimeWarning, match=r"worker process failed \(cannot start "
                                            r".*no-such-python") as caught:
        report = fastnn.warmup(jobs=2)
    assert sorted(str(w.message).split()[3] for w in caught) == ["float32", "float64"]
    assert {d for _, d, _ in report.steps} == {"float32", "float64"}
    assert not any(n.startswith("check:") for n, _, _ in report.steps)


def test_an_interrupted_warmup_leaves_no_worker(monkeypatch):
    started = []

    def sleeper(dtype, sparse):
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
        return started[-1]

    def interrupted(dtype, proc):
        raise KeyboardInterrupt

    monkeypatch.setattr(W, "_start_worker", sleeper)
    monkeypatch.setattr(W, "_worker_report", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fastnn.warmup(jobs=2)
    assert len(started) == 2 and all(p.poll() is not None for p in started)


@pytest.mark.parametrize("failure, message", [
    ("import sys; sys.stderr.write('boom'); sys.exit(3)", r"exit status 3: boom"),
    ("print('not json')", r"Expecting value"),
    ("print('{\"compiled\": 1}')", r"'loaded'"),
])
def test_a_failed_worker_is_compiled_here(monkeypatch, failure, message):
    """A worker that dies or reports nonsense leaves its dtype to this process, with a
    warning naming it."""
    import json

    def failing(dtype, sparse):
        report = json.dumps({"compiled": 0, "loaded": 5, "steps": [
            {"name": "epoch+forward (softmax/labels)", "dtype": "float32", "seconds": 0.5}]})
        code = {"float64": failure, "float32": f"print({report!r})"}[dtype]
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    monkeypatch.setattr(W, "_start_worker", failing)
    with pytest.warns(RuntimeWarning, match=r"the float64 worker process failed \(.*"
                                            + message):
        report = fastnn.warmup(jobs=2)
    assert report.loaded == 5  # the float32 worker's report
    names = [(n, d) for n, d, _ in report.steps]
    assert names[0] == ("epoch+forward (softmax/labels)", "float32")  # the worker's step
    assert ("epoch+forward (softmax/labels)", "float64") in names  # compiled (loaded) here
    assert names[-1] == ("check: every kernel loads here", "float32+float64")


@pytest.mark.slow  # a worker process (loading one dtype from the cache the tests above filled)
def test_a_worker_may_print_numba_debugging_output(monkeypatch):
    """``NUMBA_DEBUG_CACHE=1`` makes numba print a line per cache file to stdout, before the
    worker's report: the report is still read (no warning, no compiling a dtype twice)."""
    import warnings

    monkeypatch.setenv("NUMBA_DEBUG_CACHE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = W._worker_report("float32", W._start_worker("float32", False))
    assert ("epoch+forward (softmax/labels)", "float32") in {(n, d) for n, d, _ in
                                                              report["steps"]}
    assert report["loaded"] + report["compiled"] > 0


@pytest.mark.slow  # an empty cache: both dtypes compiled from scratch, in two processes
def test_parallel_warmup_leaves_a_complete_cache(tmp_path):
    """``fastnn warmup --jobs 2`` into an empty cache compiles each dtype in a worker process,
    and a new process then loads every kernel: nothing is compiled twice or lost."""
    import json
    import os

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))

    def warm(*args):
        out = subprocess.run([sys.executable, "-m", "fastnn", "warmup", "--json", *args],
                             capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    first = warm("--jobs", "2")
    steps = {(s["name"], s["dtype"]) for s in first["steps"]}
    for dtype in ("float32", "float64"):
        assert ("epoch+forward (softmax/labels)", dtype) in steps
    assert ("check: every kernel loads here", "float32+float64") in steps
    assert first["compiled"] > 50
    again = warm("--jobs", "1")
    assert again["compiled"] == 0 and again["loaded"] > 0


@pytest.mark.slow  # a subprocess
def test_cache_dir_is_where_numba_keeps_the_kernels_of_a_read_only_install(tmp_path):
    """Without ``NUMBA_CACHE_DIR`` and with a ``__pycache__`` it cannot write (an install
    owned by another user), numba keeps the kernels in the user-wide cache: the report says so."""
    import os

    code = ("import numba.core.caching as c; "
            "c.InTreeCacheLocator.from_function = classmethod(lambda cls, f, p: None); "
            "from fastnn.warmup import cache_dir; print(cache_dir())")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    where = out.stdout.strip()
    assert where.startswith(str(tmp_path / "numba")) and os.path.isdir(where)
