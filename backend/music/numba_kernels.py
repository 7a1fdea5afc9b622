"""The downbeat tracker's two compiled loops in numba: the fallback where the C kernels (backend.music.native) are
not built, and the reference the tests hold them to.

bilstm, the peephole-LSTM recurrence of the downbeat networks: in numpy a step of the 16 tiny LSTMs is ~20 calls of
~2 us each, and a minute of music is 18,000 steps. Compiled, the recurrent products take ~4 us a step; the gate
nonlinearities would take 40 more through libm's exp and tanh, so they use Eigen's rational tanh (within 3e-7 of the
true one on all floats; sigmoid(x) = (1 + tanh(x / 2)) / 2), which the compiler vectorises. numpy's error model (a
float division by zero gives inf, as in C, instead of raising): numba's default puts a check and a branch on every
division, which kept the compiler from vectorising the step's products (a layer over a minute of music: 80 -> 44
ms; the gates' divisions stay scalar).

viterbi, madmom's HMM decoding with one-byte back-pointers where a state has several predecessors
(backend.music.viterbi says why).

numba comes with librosa (a dependency); `cache=True` keeps the machine code in __pycache__ (scripts/bootstrap.sh
compiles it at install, before anything runs in parallel). Both release the GIL (`nogil`). A cold process pays ~0.3 s
of CPU to import numba and load the cached code, which is why the C kernels come first.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_CLAMP = np.float32(7.90531110763549805)  # beyond this tanh is +-1 in float32
_P = tuple(np.float32(v) for v in (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                   5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                   4.89352455891786e-03))
_Q = tuple(np.float32(v) for v in (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                                   4.89352518554385e-03))


@njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def rational_tanh(x):
    """tanh(x) for float32 x, Eigen's 13/6 rational approximation."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = _P[0]
    for k in range(1, 7):
        p = p * x2 + _P[k]
    q = _Q[0]
    for k in range(1, 4):
        q = q * x2 + _Q[k]
    return x * p / q


@njit(cache=True, fastmath=True, nogil=True, error_model="numpy")
def bilstm(proj: np.ndarray, bias: np.ndarray, w_rec: np.ndarray, peep: np.ndarray, out: np.ndarray) -> None:
    """One bidirectional peephole-LSTM layer of M networks, as madmom's LSTMLayer steps: out (M, T, 2H) gets the
    forward hidden states, then the backward ones (which read time reversed), from the input projections proj
    (M, T, 2, 4H: direction; gates input, forget, cell, output), bias (M, 2, 4H), recurrent weights w_rec
    (M, 2, H, 4H) and peepholes (M, 2, 3, H) of the input and forget gates (on the previous cell) and of the output
    gate (on the new cell)."""
    M, T = proj.shape[0], proj.shape[1]
    G = proj.shape[3]
    H = G // 4
    h = np.zeros((M, 2, H), dtype=np.float32)
    c = np.zeros((M, 2, H), dtype=np.float32)
    z = np.empty(G, dtype=np.float32)
    half = np.float32(0.5)
    for t in range(T):
        for m in range(M):
            for d in range(2):
                tt = t if d == 0 else T - 1 - t
                for j in range(G):
                    z[j] = proj[m, tt, d, j] + bias[m, d, j]
                for i in range(H):
                    hi = h[m, d, i]
                    for j in range(G):
                        z[j] += hi * w_rec[m, d, i, j]
                for j in range(H):
                    cj = c[m, d, j]
                    ig = half * rational_tanh(half * (z[j] + cj * peep[m, d, 0, j])) + half
                    fg = half * rational_tanh(half * (z[H + j] + cj * peep[m, d, 1, j])) + half
                    cell = rational_tanh(z[2 * H + j]) * ig + cj * fg
                    og = half * rational_tanh(half * (z[3 * H + j] + cell * peep[m, d, 2, j])) + half
                    c[m, d, j] = cell
                    h[m, d, j] = rational_tanh(cell) * og
                    out[m, tt, d * H + j] = h[m, d, j]


@njit(cache=True, nogil=True)
def viterbi(states, pointers, log_probs, om_pointers, densities, log_init):  # pragma: no cover - compiled
    """(state path, log probability) of the HMM given as madmom's sparse transition model (states, pointers,
    log_probs), its observation pointers and the (T, observations) log densities; the path is empty when no path is
    possible. The sums and comparisons are madmom's, in its order."""
    n_states = len(pointers) - 1
    n_frames = densities.shape[0]
    slot = np.full(n_states, -1, dtype=np.int64)  # back-pointer column of each state with several predecessors
    n_multi = 0
    for s in range(n_states):
        if pointers[s + 1] - pointers[s] > 1:
            slot[s] = n_multi
            n_multi += 1
    back = np.zeros((n_frames, max(n_multi, 1)), dtype=np.uint8)
    prev = log_init.copy()
    cur = np.empty(n_states, dtype=np.float64)
    for t in range(n_frames):
        for s in range(n_states):
            best = -np.inf
            arg = 0
            density = densities[t, om_pointers[s]]
            first = pointers[s]
            for p in range(first, pointers[s + 1]):
                value = prev[states[p]] + log_probs[p] + density
                if value > best:
                    best = value
                    arg = p - first
            cur[s] = best
            if slot[s] >= 0:
                back[t, slot[s]] = arg
        prev, cur = cur, prev
    best_state = 0
    for s in range(1, n_states):  # the first of equal maxima, as numpy's argmax
        if prev[s] > prev[best_state]:
            best_state = s
    log_p = prev[best_state]
    path = np.empty(n_frames if log_p > -np.inf else 0, dtype=np.uint32)
    if log_p > -np.inf:
        state = best_state
        for t in range(n_frames - 1, -1, -1):
            path[t] = state
            k = slot[state]
            state = states[pointers[state] + (back[t, k] if k >= 0 else 0)]
    return path, log_p
