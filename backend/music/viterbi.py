"""madmom's HMM Viterbi decoding, compiled: the same path and log probability, a fraction of the memory.

madmom's `HiddenMarkovModel.viterbi` keeps a uint32 back-pointer for every state of every frame: the downbeat
tracker's two bar-pointer HMMs (4347 and 5796 states at 50 fps) allocate 1.2 GB for a 10-min song, and the page
faults of that allocation were most of the decode's 1-2 s. In those HMMs all but 1-3 % of the states have a single
predecessor (the next position at the same tempo); only the states where a beat may change tempo have more. So here
a back-pointer is kept only for those states, as the offset of the chosen transition (one byte): 5 MB for 10 min.
The sums and comparisons are madmom's, in its order (`prev + transition + density`, strictly greater wins, the
first of equal final states), so the path and log probability are the same to the bit (tests/test_beat_tracker.py
compares them). The loop is compiled (backend.music.native's C, else backend.music.numba_kernels); both release the
GIL, so the two meters' HMMs decode side by side where a core is free.
"""

from __future__ import annotations

import numpy as np


def viterbi(hmm, observations: np.ndarray) -> tuple[np.ndarray, float]:
    """(most likely state path, its log probability) of a madmom HiddenMarkovModel for `observations`, as
    `hmm.viterbi(observations)` returns them (an empty path when no path is possible)."""
    tm, om = hmm.transition_model, hmm.observation_model
    if np.diff(tm.pointers).max(initial=0) > 256:
        return hmm.viterbi(observations)
    densities = np.ascontiguousarray(om.log_densities(observations), dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_init = np.log(np.asarray(hmm.initial_distribution, dtype=np.float64))
    args = (np.ascontiguousarray(tm.states, dtype=np.uint32), np.ascontiguousarray(tm.pointers, dtype=np.uint32),
            np.ascontiguousarray(tm.log_probabilities, dtype=np.float64),
            np.ascontiguousarray(om.pointers, dtype=np.uint32), densities, log_init)
    from backend.music import native

    lib = native.library()
    if lib is not None:
        path, log_p = native.viterbi(lib, *args)
    else:
        from backend.music.numba_kernels import viterbi as numba_viterbi

        path, log_p = numba_viterbi(*args)
    return path, float(log_p)
