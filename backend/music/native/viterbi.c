/* Viterbi decoding of a madmom HiddenMarkovModel (backend/music/viterbi.py's kernel, in C; IEEE arithmetic, so the
 * sums and comparisons are madmom's to the bit: prev + transition + density, strictly greater wins).
 * A back-pointer (the offset of the chosen transition, one byte) is kept only for the states whose slot is >= 0,
 * those with several predecessors; back is (n_frames, n_cols). prev holds the initial log distribution and is
 * overwritten; cur is scratch of n_states. Returns the best final log probability; the path is written when it is
 * above -inf. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

double mace_viterbi(const uint32_t *states, const uint32_t *pointers, const double *log_probs,
                    const uint32_t *om_pointers, const double *densities, ptrdiff_t n_obs, const int64_t *slot,
                    uint8_t *back, ptrdiff_t n_cols, ptrdiff_t n_states, ptrdiff_t n_frames, double *prev,
                    double *cur, uint32_t *path) {
    for (ptrdiff_t t = 0; t < n_frames; t++) {
        const double *dens = densities + t * n_obs;
        uint8_t *bt = back + t * n_cols;
        for (ptrdiff_t s = 0; s < n_states; s++) {
            double best = -INFINITY;
            uint32_t arg = 0;
            const double density = dens[om_pointers[s]];
            const uint32_t first = pointers[s], last = pointers[s + 1];
            for (uint32_t p = first; p < last; p++) {
                const double value = prev[states[p]] + log_probs[p] + density;
                if (value > best) {
                    best = value;
                    arg = p - first;
                }
            }
            cur[s] = best;
            if (slot[s] >= 0) bt[slot[s]] = (uint8_t)arg;
        }
        double *swap = prev;
        prev = cur;
        cur = swap;
    }
    ptrdiff_t best_state = 0;
    for (ptrdiff_t s = 1; s < n_states; s++) /* the first of equal maxima, as numpy's argmax */
        if (prev[s] > prev[best_state]) best_state = s;
    const double log_p = n_states > 0 ? prev[best_state] : -INFINITY;
    if (log_p > -INFINITY) {
        ptrdiff_t state = best_state;
        for (ptrdiff_t t = n_frames - 1; t >= 0; t--) {
            path[t] = (uint32_t)state;
            const int64_t k = slot[state];
            state = states[pointers[state] + (k >= 0 ? back[t * n_cols + k] : 0)];
        }
    }
    return log_p;
}
