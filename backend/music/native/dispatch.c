/* mace_bilstm: the AVX2 + FMA build of the LSTM recurrence where the CPU has both (when built, MACE_X86), else the
 * plain one. The CPU is asked once, as the library loads (before any thread can call in). */
#include <stddef.h>

void mace_bilstm_base(const float *, ptrdiff_t, ptrdiff_t, const float *, const float *, const float *, float *, int,
                      int, int);
#ifdef MACE_X86
void mace_bilstm_avx2(const float *, ptrdiff_t, ptrdiff_t, const float *, const float *, const float *, float *, int,
                      int, int);
#endif

static int variant = 0;

#ifdef MACE_X86
__attribute__((constructor)) static void detect(void) {
    __builtin_cpu_init();
    variant = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
}
#endif

int mace_bilstm_variant(void);
int mace_bilstm_variant(void) { return variant; }

void mace_bilstm(const float *proj, ptrdiff_t sm, ptrdiff_t st, const float *bias, const float *w_rec,
                 const float *peep, float *out, int M, int T, int H);
void mace_bilstm(const float *proj, ptrdiff_t sm, ptrdiff_t st, const float *bias, const float *w_rec,
                 const float *peep, float *out, int M, int T, int H) {
#ifdef MACE_X86
    if (variant == 1) {
        mace_bilstm_avx2(proj, sm, st, bias, w_rec, peep, out, M, T, H);
        return;
    }
#endif
    mace_bilstm_base(proj, sm, st, bias, w_rec, peep, out, M, T, H);
}
