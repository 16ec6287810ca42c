"""Every script in examples/ runs and prints what it claims to show (subprocesses)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def outputs(line):
    """The two probability rows printed on a result line, as lists of floats."""
    return [[float(v) for v in row.split(",")] for row in re.findall(r"\[([^\]]+)\]", line)]


def test_the_issue_examples_exist():
    # (other examples, e.g. memmap_fit.py, are tested by their owners' test files)
    assert {"seed_softmax.py", "digits.py", "sklearn_dropin.py", "large_mlp.py"} <= {
        p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.slow
def test_seed_softmax():
    out = run_example("seed_softmax.py").splitlines()
    sections = [i for i, l in enumerate(out) if re.match(r"\s*softmax \+ cross-entropy", l)]
    assert len(sections) == 4
    # 1. distinct inputs: softmax + CE puts > 0.95 on the right class for both inputs
    (x1, x2) = outputs(out[sections[0]])
    assert x1[0] > 0.95 and x2[1] > 0.95
    # 2. every route to dL/dz agrees with p - y; the network passes the gradient check
    diff = next(l for l in out if "largest difference from p - y" in l)
    assert float(diff.split(":")[1]) < 1e-12
    check = next(l for l in out if "central differences" in l)
    assert max(float(v) for v in re.findall(r"\d\.\de[-+]\d+", check)) < 1e-6
    # 3a. identical inputs: exactly [0.5, 0.5] for both losses
    for line in (out[sections[1] - 1], out[sections[1]]):
        assert outputs(line) == [[0.5, 0.5], [0.5, 0.5]]
    # 3b. saturated start: squared error stays wrong, cross-entropy recovers
    (m1, _), (c1, c2) = outputs(out[sections[2] - 1]), outputs(out[sections[2]])
    assert m1[0] < 0.01 and c1[0] > 0.95 and c2[1] > 0.95


@pytest.mark.slow
def test_digits():
    out = run_example("digits.py")
    accuracy = float(re.search(r"test accuracy: ([\d.]+)", out).group(1))
    assert accuracy >= 0.96
    assert "identical predictions: True" in out


@pytest.mark.slow
def test_sklearn_dropin():
    pytest.importorskip("sklearn")
    out = run_example("sklearn_dropin.py")
    rows = re.findall(r"^(\S.*?)\s+(sklearn|fastnn)\s+([\d.]+)s\s+([\d.]+)ms\s+([\d.]+)$", out,
                      flags=re.M)
    assert len(rows) == 4
    acc = {(r[0], r[1]): float(r[4]) for r in rows}
    for data in {r[0] for r in rows}:
        assert abs(acc[data, "fastnn"] - acc[data, "sklearn"]) < 0.02
    assert out.count("fit speed-up") == 2


@pytest.mark.slow
def test_large_mlp_small_settings():
    out = run_example("large_mlp.py", "--epochs", "2", "--samples", "1024", "--hidden", "256,256",
                      "--threads", "1")
    assert re.search(r"best epoch: [\d.]+ steps/s", out)
    assert out.count("steps/s") == 3
