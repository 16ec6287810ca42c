"""History.plot / fastnn.plot.plot_history write a real PNG; a clear message without matplotlib."""
import struct
import sys

import numpy as np
import pytest

from fastnn.plot import plot_history
from fastnn.train import History

pytest.importorskip("matplotlib")


def _history(epochs=12, validation=True):
    h = History()
    for e in range(epochs):
        h.train_loss.append(2.0 * 0.7 ** e + 0.01)
        h.val_loss.append(2.1 * 0.75 ** e + 0.05 if validation else None)
        h.val_accuracy.append(1 - 0.9 * 0.6 ** e if validation else None)
        h.val_r2.append(None)
        h.seconds.append(0.01)
        h.lr.append(1e-3)
    return h


def _png_size(path):
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    assert raw[12:16] == b"IHDR"
    assert raw.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82"), "PNG not complete"
    return struct.unpack(">II", raw[16:24])


def test_history_plot_writes_png(tmp_path):
    path = tmp_path / "curve.png"
    assert _history().plot(path) == str(path)
    width, height = _png_size(path)
    assert (width, height) == (1000, 400)  # two panels: loss and accuracy
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (400, 1000)
    assert np.ptp(img[..., :3]) > 0.5  # something was drawn, not a blank canvas


def test_plot_without_validation_has_one_panel(tmp_path):
    path = tmp_path / "train_only.png"
    plot_history(_history(validation=False), path, title="train only")
    assert _png_size(path) == (550, 400)


def test_real_fit_history(tmp_path):
    import fastnn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = (X[:, 0] > 0).astype(int)
    net = fastnn.Network([3, 4, 2], activation="tanh", dtype="float64", seed=0)
    hist = fastnn.fit(net, X, y, epochs=3, batch_size=16, optimizer=fastnn.SGD(0.1),
                      validation_data=(X, y))
    hist.plot(tmp_path / "fit.png")
    assert _png_size(tmp_path / "fit.png")[0] == 1000


def test_empty_history_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no recorded epochs"):
        plot_history(History(), tmp_path / "x.png")


def test_pyplot_backend_untouched(tmp_path):
    import matplotlib

    before = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    _history().plot(tmp_path / "c.png")
    after = matplotlib.get_backend() if "matplotlib.pyplot" in sys.modules else None
    assert before == after


def test_missing_matplotlib_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install fastnn\[plot\]"):
        _history().plot(tmp_path / "c.png")
