/* Masked multi-head self-attention with dropout on the probabilities, fused per (b,h):
 * S = scale Q K^T, masked softmax, dropout, O = P V, all while the head's T x T tile is
 * hot in L2. One OpenMP loop over B*NH heads, each calling single-threaded GEMMs (chosen so
 * the tile is not streamed through memory once per stage; the staged batched-GEMM variant
 * has not been measured against it yet).
 *
 * Keys past the last real token of a sequence (kv = 1 + last j with mask[b,j] != 0) have
 * exactly zero probability, so the GEMMs run with kv instead of T keys: with typical
 * padding this saves most of the attention FLOPs. Masked keys inside [0,kv) get 0 too.
 *
 * Dropout counter layout (the CUDA backend must match bit for bit):
 *   element (b, h, i, j) of the probabilities, i = query, j = key, is kept iff
 *   af_dropout_keep(seed, offset + (((uint64_t)b*NH + h)*T + i)*T + j, p)
 * i.e. the counter is offset + the element's flat index in att[B,NH,T,T]; a call uses
 * counters [offset, offset + B*NH*T*T), so the caller advances offset by that much.
 * Kept probabilities are scaled by 1/(1-p). att stores probabilities before dropout. */
#include "kernels/cpu/vmath.h" /* first: see its pragma */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>
#include <string.h>
#include <omp.h>
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/dropout_mask.h"

/* S[T,T] rows: masked softmax over keys [0,kv), zeros for keys >= kv */
AF_CPU_CLONES static void softmax_rows(float *S, int T, int kv, const float *mb) {
  for (int i = 0; i < T; i++) {
    float *s = S + (size_t)i * T;
    /* branch-free selects so the loops vectorise; masked keys get exactly 0 */
    float mx = -INFINITY, sum = 0.0f;
    if (mb) {
#pragma omp simd reduction(max : mx)
      for (int j = 0; j < kv; j++) {
        float v = mb[j] != 0.0f ? s[j] : -INFINITY;
        mx = v > mx ? v : mx;
      }
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < kv; j++) {
        float e = af_vexpf(s[j] - mx);
        e = mb[j] != 0.0f ? e : 0.0f;
        s[j] = e;
        sum += e;
      }
    } else {
#pragma omp simd reduction(max : mx)
      for (int j = 0; j < kv; j++) mx = s[j] > mx ? s[j] : mx;
#pragma omp simd reduction(+ : sum)
      for (int j = 0; j < kv; j++) {
        float e = af_vexpf(s[j] - mx);
        s[j] = e;
        sum += e;
      }
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < kv; j++) s[j] *= inv;
    for (int j = kv; j < T; j++) s[j] = 0.0f;
  }
}

/* dst[i,j] = dropout(src[i,j]) for keys [0,kv); counter base + i*T + j */
static void dropout_rows(float *dst, const float *src, int T, int kv, uint64_t seed, uint64_t base, float p,
                         float ds) {
  for (int i = 0; i < T; i++)
    af_cpu_dropout_apply(dst + (size_t)i * T, src + (size_t)i * T, kv, p, ds, seed, base + (uint64_t)i * T);
}

/* D holds dPdrop; turn it into dS = P (dP - rowsum(P dP)), dP = dropout'(dPdrop) */
AF_CPU_CLONES static void softmax_bwd_rows(float *D, const float *P, int T, int kv, int drop, uint64_t seed,
                                           uint64_t base, float p, float ds) {
  for (int i = 0; i < T; i++) {
    float *d = D + (size_t)i * T;
    const float *pr = P + (size_t)i * T;
    if (drop) af_cpu_dropout_apply(d, d, kv, p, ds, seed, base + (uint64_t)i * T);
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int j = 0; j < kv; j++) dot += pr[j] * d[j];
#pragma omp simd
    for (int j = 0; j < kv; j++) d[j] = pr[j] * (d[j] - dot);
  }
}

/* T x T tiles for the dropped-out probabilities (forward) or dP/dS (backward). Only the
 * tiles of the running threads are used (tile = thread number): each is reused head after
 * head in L2 instead of touching B*NH*T*T fresh floats per layer (no step-time change was
 * measurable on the 2-core bench machine, whose 36 MB L3 held the old layout too). The size
 * stays B*NH*T*T: one tile per possible thread of a team capped at B*NH. */
size_t af_cpu_attention_scratch_floats(int B, int T, int C, int NH) {
  (void)C;
  return (size_t)B * NH * T * T;
}

/* The (b, h) loops run at most B*NH threads, so thread numbers index distinct tiles. */
static int team_size(int B, int NH) {
  int t = omp_get_max_threads();
  return t < B * NH ? t : B * NH;
}

static float *thread_tile(float *scratch, int T) { return scratch + (size_t)omp_get_thread_num() * T * T; }

static int kv_len(const float *mask_b, int T) {
  if (!mask_b) return T;
  int kv = 0;
  for (int j = 0; j < T; j++)
    if (mask_b[j] != 0.0f) kv = j + 1;
  return kv;
}

/* out[B,T,C], att[B,NH,T,T], qkv[B,T,3C], mask[B,T] (NULL: no padding), scratch[B*NH*T*T] */
void af_cpu_attention_forward(af_backend *be, float *out, float *att, const float *qkv,
                              const float *mask, float *scratch, int B, int T, int C, int NH,
                              float dropout_p, uint64_t seed, uint64_t offset) {
  (void)be;
  const int HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)HS);
  const float ds = dropout_p > 0.0f ? 1.0f / (1.0f - dropout_p) : 1.0f;
  af_gemm_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_size(B, NH))
  for (int bh = 0; bh < B * NH; bh++) {
    int b = bh / NH, h = bh % NH;
    const float *mb = mask ? mask + (size_t)b * T : NULL;
    int kv = kv_len(mb, T);
    const float *q = qkv + (size_t)b * T * C3 + h * HS, *k = q + C, *v = q + 2 * C;
    float *S = att + (size_t)bh * T * T;
    float *o = out + (size_t)b * T * C + h * HS;
    if (kv == 0) { /* no real key at all: zero probabilities, zero output */
      memset(S, 0, (size_t)T * T * sizeof(float));
      for (int i = 0; i < T; i++) memset(o + (size_t)i * C, 0, (size_t)HS * sizeof(float));
      continue;
    }
    af_sgemm(0, 1, T, kv, HS, scale, q, C3, k, C3, 0.0f, S, T);
    softmax_rows(S, T, kv, mb);
    const float *P = S;
    if (dropout_p > 0.0f) {
      float *Pd = thread_tile(scratch, T);
      dropout_rows(Pd, S, T, kv, seed, offset + (uint64_t)bh * T * T, dropout_p, ds);
      P = Pd;
    }
    af_sgemm(0, 0, T, HS, kv, 1.0f, P, T, v, C3, 0.0f, o, C);
  }
  af_gemm_serial_end();
}

/* dqkv[B,T,3C] overwritten; dout[B,T,C]; qkv, att, mask as in forward; scratch[B*NH*T*T] */
void af_cpu_attention_backward(af_backend *be, float *dqkv, const float *dout, const float *qkv,
                               const float *att, const float *mask, float *scratch, int B, int T,
                               int C, int NH, float dropout_p, uint64_t seed, uint64_t offset) {
  (void)be;
  const int HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)HS);
  const float ds = dropout_p > 0.0f ? 1.0f / (1.0f - dropout_p) : 1.0f;
  af_gemm_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_size(B, NH))
  for (int bh = 0; bh < B * NH; bh++) {
    int b = bh / NH, h = bh % NH;
    const float *mb = mask ? mask + (size_t)b * T : NULL;
    int kv = kv_len(mb, T);
    const float *q = qkv + (size_t)b * T * C3 + h * HS, *k = q + C, *v = q + 2 * C;
    float *dq = dqkv + (size_t)b * T * C3 + h * HS, *dk = dq + C, *dv = dq + 2 * C;
    const float *P = att + (size_t)bh * T * T;
    const float *dO = dout + (size_t)b * T * C + h * HS;
    float *D = thread_tile(scratch, T);
    uint64_t base = offset + (uint64_t)bh * T * T;
    /* keys past kv get no gradient; with kv == 0 nothing does */
    for (int j = kv; j < T; j++) {
      memset(dk + (size_t)j * C3, 0, (size_t)HS * sizeof(float));
      memset(dv + (size_t)j * C3, 0, (size_t)HS * sizeof(float));
    }
    if (kv == 0) {
      for (int i = 0; i < T; i++) memset(dq + (size_t)i * C3, 0, (size_t)HS * sizeof(float));
      continue;
    }
    /* dV = Pdrop^T dO */
    const float *Pd = P;
    if (dropout_p > 0.0f) {
      dropout_rows(D, P, T, kv, seed, base, dropout_p, ds);
      Pd = D;
    }
    af_sgemm(1, 0, kv, HS, T, 1.0f, Pd, T, dO, C, 0.0f, dv, C3);
    /* dPdrop = dO V^T, then dP = dropout'(dPdrop), dS = P (dP - rowsum(P dP)) */
    af_sgemm(0, 1, T, kv, HS, 1.0f, dO, C, v, C3, 0.0f, D, T);
    softmax_bwd_rows(D, P, T, kv, dropout_p > 0.0f, seed, base, dropout_p, ds);
    /* dQ = scale dS K, dK = scale dS^T Q */
    af_sgemm(0, 0, T, HS, kv, scale, D, T, k, C3, 0.0f, dq, C3);
    af_sgemm(1, 0, kv, HS, T, scale, D, T, q, C3, 0.0f, dk, C3);
  }
  af_gemm_serial_end();
}
