"""The epoch shuffles of scikit-learn's MLP, compiled: NumPy's legacy ``RandomState.shuffle``
stream reproduced exactly.

scikit-learn draws each epoch's order as ``sample_idx = shuffle(sample_idx, random_state=rs)``,
i.e. ``rs.shuffle(arange(n))`` and an index.  ``RandomState.shuffle`` costs ~10 ns per row (a
call through NumPy's bit-generator interface for each 32-bit draw): 200 epochs of 1,437 rows
take ~3 ms, 6% of a whole digits fit.  :func:`shuffled_orders` draws the same numbers from the
same Mersenne Twister state (``rs.get_state()``) in compiled code and returns the state to put
back (``rs.set_state``), so a fit continues the random sequence exactly as scikit-learn's.

The generator is MT19937 as NumPy implements it (``mt19937_gen`` / ``mt19937_next``); each swap
index comes from NumPy's ``random_interval(i)``: the smallest all-ones mask ``>= i``, 32-bit
draws rejected until ``draw & mask <= i`` (rows ``< 2**32``).  The tests compare with NumPy.
"""
from __future__ import annotations

import numpy as np

from fastnn._jit import jit

__all__ = ["shuffled_orders", "draw_orders"]

_N, _M = 624, 397
_MATRIX_A = np.uint32(0x9908B0DF)
_UPPER, _LOWER = np.uint32(0x80000000), np.uint32(0x7FFFFFFF)


@jit
def _twist(key):
    """NumPy's ``mt19937_gen``: the next 624 words of state, in place."""
    one, zero = np.uint32(1), np.uint32(0)
    for i in range(_N - _M):
        y = (key[i] & _UPPER) | (key[i + 1] & _LOWER)
        key[i] = key[i + _M] ^ (y >> one) ^ (_MATRIX_A if (y & one) else zero)
    for i in range(_N - _M, _N - 1):
        y = (key[i] & _UPPER) | (key[i + 1] & _LOWER)
        key[i] = key[i + _M - _N] ^ (y >> one) ^ (_MATRIX_A if (y & one) else zero)
    y = (key[_N - 1] & _UPPER) | (key[0] & _LOWER)
    key[_N - 1] = key[_M - 1] ^ (y >> one) ^ (_MATRIX_A if (y & one) else zero)


@jit
def _temper(key, out):
    """The tempered outputs of a state block (``mt19937_next`` without the position)."""
    for i in range(_N):
        y = key[i]
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
        y ^= y >> np.uint32(18)
        out[i] = y


@jit
def shuffled_orders(key, pos, sample_idx, orders):
    """``orders[e] = sample_idx`` after ``e + 1`` shuffles, as scikit-learn draws them.

    Parameters
    ----------
    key : uint32[624] — the MT19937 state (``rs.get_state()[1]``), advanced in place.
    pos : int — the state position (``rs.get_state()[2]``).
    sample_idx : int64[n] — the order before the first shuffle (not written).
    orders : int64[E, n] — written.

    Returns
    -------
    int : the new position; ``rs.set_state(("MT19937", key, pos, has_gauss, gauss))`` puts the
    generator where ``E`` calls of ``sklearn.utils.shuffle`` would have left it.
    """
    n = sample_idx.shape[0]
    out = np.empty(_N, dtype=np.uint32)
    if pos < _N:
        _temper(key, out)
    perm = np.empty(n, dtype=np.int64)
    partner = np.empty(n, dtype=np.int64)
    prev = sample_idx
    for e in range(orders.shape[0]):
        # the swap partners first: one draw per iteration, without a data-dependent branch (a
        # rejected draw, its masked value above i, keeps i and is overwritten: rejections are
        # unpredictable, and as branches would cost more than the draws)
        i = n - 1
        mask = np.int64(0)  # the smallest all-ones mask >= i; shrinks as i crosses powers of 2
        while mask < i:
            mask = 2 * mask + 1
        while i > 0:
            if pos == _N:
                _twist(key)
                _temper(key, out)
                pos = 0
            if i <= mask >> 1:
                mask >>= 1
            value = np.int64(out[pos]) & mask
            pos += 1
            partner[i] = value
            i -= 1 + ((i - value) >> 63)  # 1 when value <= i, else 0 (arithmetic, no branch)
        for i in range(n):
            perm[i] = i
        for i in range(n - 1, 0, -1):
            j = partner[i]
            perm[i], perm[j] = perm[j], perm[i]
        row = orders[e]
        for i in range(n):
            row[i] = prev[perm[i]]
        prev = row
    return pos


def draw_orders(rs, sample_idx, epochs):
    """``(orders, sample_idx)``: ``epochs`` rows of :func:`shuffled_orders` drawn from the
    ``RandomState`` ``rs`` (advanced as ``epochs`` calls of ``sklearn.utils.shuffle`` would),
    and the last order.  ``rs`` must be a legacy ``numpy.random.RandomState``."""
    name, key, pos, has_gauss, gauss = rs.get_state()
    sample_idx = np.ascontiguousarray(sample_idx, dtype=np.int64)
    orders = np.empty((epochs, sample_idx.shape[0]), dtype=np.int64)
    if sample_idx.shape[0] >= 2 ** 32:  # pragma: no cover - NumPy draws 64-bit words there
        raise ValueError("draw_orders: more than 2**32 rows")
    key = np.array(key, dtype=np.uint32)
    pos = shuffled_orders(key, int(pos), sample_idx, orders)
    rs.set_state((name, key, pos, has_gauss, gauss))
    return orders, (orders[-1] if epochs else sample_idx)
