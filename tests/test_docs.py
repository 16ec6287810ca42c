"""The documentation's code runs: every python block of docs/softmax.md (in order, one namespace)
prints exactly the ```text block that follows it, and every python block of the README runs."""
import contextlib
import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(path):
    """``(line, code, expected output or None)`` for every ```python block of ``path``: the
    expected output is the ```text block right after it (nothing but blank lines between)."""
    text = path.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    found = []
    for i, m in enumerate(fences):
        if m.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(fences):
            nxt = fences[i + 1]
            if nxt.group(1) == "text" and not text[m.end():nxt.start()].strip():
                expected = nxt.group(2)
        found.append((text.count("\n", 0, m.start()) + 1, m.group(2), expected))
    return found


def _lines(text):
    return [line.rstrip() for line in text.strip().splitlines()]


def test_softmax_doc_blocks_run_and_print_what_the_doc_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(ROOT / "docs" / "softmax.md")
    assert len(blocks) >= 8 and sum(e is not None for _, _, e in blocks) >= 6
    namespace = {"__name__": "__docs__"}
    for line, code, expected in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/softmax.md:{line}", "exec"), namespace)
        if expected is not None:
            assert _lines(out.getvalue()) == _lines(expected), f"docs/softmax.md:{line}"


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    blocks = python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    for line, code, _ in blocks:  # each in a fresh process (set_num_threads is global)
        env = dict(os.environ, MPLBACKEND="Agg")
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"README.md:{line}\n{proc.stderr}"
    assert (tmp_path / "clf.npz").exists() and (tmp_path / "curve.png").exists()
