/* The peephole-LSTM recurrence of the downbeat networks (backend/music/numba_kernels.py's bilstm, in C).
 * Compiled once as is (MACE_BILSTM=mace_bilstm_base) and, on x86-64, once for AVX2 + FMA (mace_bilstm_avx2: 30 %
 * faster); dispatch.c picks one by the CPU at run time. */
#include <stddef.h>

#ifndef MACE_BILSTM
#define MACE_BILSTM mace_bilstm_base
#endif

/* tanh(x) for float32 x, Eigen's 13/6 rational approximation (within 3e-7 of the true one on all floats). */
static inline float rational_tanh(float x) {
    const float clamp = 7.90531110763549805f; /* beyond this tanh is +-1 in float32 */
    x = x < -clamp ? -clamp : (x > clamp ? clamp : x);
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

/* One bidirectional layer of M networks: out (M, T, 2H) gets the forward hidden states, then the backward ones (which
 * read time reversed). proj holds the input projections: network m, frame t starts at proj + m * sm + t * st and
 * holds (direction, 4H gates: input, forget, cell, output) contiguously. bias (M, 2, 4H), w_rec (M, 2, H, 4H),
 * peep (M, 2, 3, H): the input and forget gates' peepholes read the previous cell, the output gate's the new one. */
void MACE_BILSTM(const float *proj, ptrdiff_t sm, ptrdiff_t st, const float *bias, const float *w_rec,
                 const float *peep, float *out, int M, int T, int H);
void MACE_BILSTM(const float *proj, ptrdiff_t sm, ptrdiff_t st, const float *bias, const float *w_rec,
                 const float *peep, float *out, int M, int T, int H) {
    const int G = 4 * H;
    float h[M][2][H], c[M][2][H], z[G];
    for (int m = 0; m < M; m++)
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < H; j++) h[m][d][j] = c[m][d][j] = 0.0f;
    for (int t = 0; t < T; t++) {
        for (int m = 0; m < M; m++) {
            for (int d = 0; d < 2; d++) {
                const int tt = d == 0 ? t : T - 1 - t;
                const float *x = proj + m * sm + (ptrdiff_t)tt * st + d * G;
                const float *b = bias + (m * 2 + d) * G;
                const float *w = w_rec + (ptrdiff_t)(m * 2 + d) * H * G;
                const float *pp = peep + (m * 2 + d) * 3 * H;
                float *hd = h[m][d], *cd = c[m][d];
                for (int j = 0; j < G; j++) z[j] = x[j] + b[j];
                for (int i = 0; i < H; i++) {
                    const float hi = hd[i];
                    const float *wi = w + i * G;
                    for (int j = 0; j < G; j++) z[j] += hi * wi[j];
                }
                float *o = out + ((ptrdiff_t)m * T + tt) * 2 * H + d * H;
                for (int j = 0; j < H; j++) {
                    const float cj = cd[j];
                    const float ig = 0.5f * rational_tanh(0.5f * (z[j] + cj * pp[j])) + 0.5f;
                    const float fg = 0.5f * rational_tanh(0.5f * (z[H + j] + cj * pp[H + j])) + 0.5f;
                    const float cell = rational_tanh(z[2 * H + j]) * ig + cj * fg;
                    const float og = 0.5f * rational_tanh(0.5f * (z[3 * H + j] + cell * pp[2 * H + j])) + 0.5f;
                    cd[j] = cell;
                    hd[j] = rational_tanh(cell) * og;
                    o[j] = hd[j];
                }
            }
        }
    }
}
