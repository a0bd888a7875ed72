/* One RMSprop step over one parameter in one pass over memory, rounding as torch's CPU kernels do.

   torch's single-tensor RMSprop (what run/optim.py's FlatRMSprop spells out op by op) makes six passes over
   each parameter's 4-byte elements: v *= alpha; v += (1 - alpha) g g; d = max(v, floor); d = sqrt(d);
   d += eps; p += (-lr g) / d. This file makes one: blocks of BLOCK elements, each staying in L1 while
   every step of the update runs on it. The arithmetic is the same IEEE operations on the same operands in
   the same order, so the bytes are the same:

   - `mul_(alpha)`: one rounded product v * alpha (alpha as a float).
   - `addcmul_(g, g, value=c)`: torch's CPU kernel computes self + (c * g) * g with a fused multiply-add
     (one rounding for the product and the sum; measured: a plain multiply then add differs in about 7 % of
     elements): fmaf(c * g, g, v).
   - `clamp_min`: max that keeps a NaN (v < floor is false for NaN, so NaN passes through, as in torch).
   - `sqrt`: torch's float sqrt on the CPU is MKL's vmsSqrt (mode VML_HA | VML_FTZDAZ_OFF |
     VML_ERRMODE_IGNORE, ATen/cpu/vml.h), which is not the correctly rounded IEEE root (it differs from
     sqrtf in about 20 % of elements): the caller hands in that very function, from the MKL that torch links.
   - `add_(eps)`, then `addcdiv_(g, d, value=s)`: self + (s * g) / d, each operation rounded (no FMA: a
     division cannot fuse, and the file is compiled with -ffp-contract=off so no other product fuses).

   run/fused.py compiles this, checks it against torch's own kernels on this machine before using it, and
   falls back to torch's ops where it cannot (no compiler, no FMA, a different sqrt). */

#include <stdint.h>
#include <math.h>

#define BLOCK 1024 /* floats: 4 KiB of denominators; measured fastest of 256-16384 (p, v, g blocks stay in L1) */

/* MKL's vmsSqrt(MKL_INT n, ...): n passed as a 64-bit register, read whole (ILP64) or as its low half (LP64) */
typedef void (*vms_fn)(int64_t n, const float *a, float *r, int64_t mode);

static const int64_t VML_MODE = 0x2 | 0x140000 | 0x100; /* VML_HA | VML_FTZDAZ_OFF | VML_ERRMODE_IGNORE */

__attribute__((target("avx2,fma")))  /* the vector width changes no result: each element is its own */
static void block(float *restrict p, float *restrict v, const float *restrict g, float *restrict d, int64_t n,
                  float alpha, float c, float floor_, float eps, float s, vms_fn vsqrt, float *restrict dout) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float vi = fmaf(c * gi, gi, v[i] * alpha);
        v[i] = vi;
        d[i] = vi < floor_ ? floor_ : vi;
    }
    vsqrt(n, d, d, VML_MODE);
    for (int64_t i = 0; i < n; i++) {
        float di = d[i] + eps;
        p[i] = p[i] + (s * g[i]) / di;
    }
    if (dout)
        for (int64_t i = 0; i < n; i++)
            dout[i] = d[i] + eps;
}

/* p, v, g: n contiguous floats each (the parameter, its square_avg, its gradient); c = 1 - alpha and
   s = -lr as torch rounds them to float; dout: NULL, or n floats to receive the denominators sqrt(v) + eps
   (for tests). Returns 0, or -1 if this CPU lacks AVX2 or FMA. */
int vaebench_rmsprop(float *p, float *v, const float *g, int64_t n, float alpha, float c, float floor_, float eps,
                     float s, vms_fn vsqrt, float *dout) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("fma") || !__builtin_cpu_supports("avx2"))
        return -1;
    float d[BLOCK];
    for (int64_t i = 0; i < n; i += BLOCK) {
        int64_t m = n - i < BLOCK ? n - i : BLOCK;
        block(p + i, v + i, g + i, d, m, alpha, c, floor_, eps, s, vsqrt, dout ? dout + i : 0);
    }
    return 0;
}
