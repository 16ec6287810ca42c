"""Row orders shared by the training benchmarks."""
import numpy as np


def shuffled(n):
    """A fixed shuffled visiting order, as training with ``shuffle=True`` uses: every minibatch
    is gathered (fastnn reads consecutive rows in place, which an unshuffled order would allow)."""
    return np.random.default_rng(1).permutation(n).astype(np.int64)
