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


def _row(out, name):
    """The two output rows printed on the line that starts with ``name``."""
    line = next(l for l in out if l.strip().startswith(name))
    return outputs(line)


@pytest.mark.slow
def test_seed_softmax(tmp_path):
    out = run_example("seed_softmax.py", "--plot", str(tmp_path)).splitlines()
    stuck = [[0.5, 0.5], [0.5, 0.5]]
    # 1. the learner's setup gives exactly [0.5, 0.5], in NumPy and in fastnn
    assert _row(out, "NumPy") == stuck and _row(out, "fastnn, output='sigmoid'") == stuck
    # 2. diagnose names the cause; check_gradients refuses a perfect score at the zero start
    text = "\n".join(out)
    for code in ("symmetric_units", "identical_activations", "cancelling_gradients"):
        assert f"{code} (problem" in text
    assert "{'W1': nan, 'b1': nan, 'W2': nan, 'b2': nan}" in text
    # 3. what fixes it and what does not
    for fix in ("random initial weights", "per-example updates", "shuffled minibatches of 1",
                "softmax + cross-entropy, random start"):
        (x1, x2) = _row(out, fix)
        assert x1[0] > 0.9 and x2[1] > 0.9, fix
    for not_a_fix in ("unchanged", "softmax + cross-entropy (zero start)", "learning rate 5"):
        assert _row(out, not_a_fix) == stuck, not_a_fix
    (s1, _), (c1, c2) = (_row(out, "saturated outputs (biases -8, +8), squared error"),
                         _row(out, "saturated outputs (biases -8, +8), softmax"))
    assert s1[0] < 0.01 and c1[0] > 0.95 and c2[1] > 0.95
    (t1, t2) = _row(out, "learning rate 0.001")
    assert abs(t1[0] - t2[0]) < 0.01
    # 4. both NumPy arms pass the gradient check; the planted bug fails in W2 only
    def errors(name):
        line = next(l for l in out if l.strip().startswith(name))
        return dict(re.findall(r"(\w+) (\d\.\de[-+]\d+)", line))
    for arm in ("sigmoid  arm", "softmax  arm"):
        assert max(float(v) for v in errors(arm).values()) < 1e-7
    bug = {k: float(v) for k, v in errors("planted bug").items()}
    assert bug["W2"] > 0.1 and max(bug["W1"], bug["b1"], bug["b2"]) < 1e-7
    # --plot: two readable images
    import matplotlib.image

    for name in ("seed_softmax_losses.png", "seed_softmax_gradients.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 300 and image.shape[1] > 500 and image.std() > 0.05


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
