"""madmom's HMM Viterbi decoding, compiled with numba: the same path and log probability, a fraction of the memory.

madmom's `HiddenMarkovModel.viterbi` keeps a uint32 back-pointer for every state of every frame: the downbeat
tracker's two bar-pointer HMMs (4347 and 5796 states at 50 fps) allocate 1.2 GB for a 10-min song, and the page
faults of that allocation were most of the decode's 1-2 s. In those HMMs all but 1-3 % of the states have a single
predecessor (the next position at the same tempo); only the states where a beat may change tempo have more. So here
a back-pointer is kept only for those states, as the offset of the chosen transition (one byte): 5 MB for 10 min.
The sums and comparisons are madmom's, in its order (`prev + transition + density`, strictly greater wins, the
first of equal final states), so the path and log probability are the same to the bit (tests/test_beat_tracker.py
compares them). The kernel releases the GIL, so the two meters' HMMs decode side by side where a core is free.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _viterbi(states, pointers, log_probs, om_pointers, densities, log_init):  # pragma: no cover - compiled
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


def viterbi(hmm, observations: np.ndarray) -> tuple[np.ndarray, float]:
    """(most likely state path, its log probability) of a madmom HiddenMarkovModel for `observations`, as
    `hmm.viterbi(observations)` returns them (an empty path when no path is possible)."""
    tm, om = hmm.transition_model, hmm.observation_model
    if np.diff(tm.pointers).max(initial=0) > 256:
        return hmm.viterbi(observations)
    densities = np.ascontiguousarray(om.log_densities(observations), dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_init = np.log(np.asarray(hmm.initial_distribution, dtype=np.float64))
    path, log_p = _viterbi(np.ascontiguousarray(tm.states, dtype=np.uint32),
                           np.ascontiguousarray(tm.pointers, dtype=np.uint32),
                           np.ascontiguousarray(tm.log_probabilities, dtype=np.float64),
                           np.ascontiguousarray(om.pointers, dtype=np.uint32), densities, log_init)
    return path, float(log_p)
