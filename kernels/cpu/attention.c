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
 * Kept probabilities are scaled by 1/(1-p). att stores probabilities before dropout.
 *
 * AF_PREC_BF16: qkv (unless it comes stored in bf16, AF_STORE_BF16) and dout in backward
 * are rounded to bf16 once per call into the scratch, the probabilities (and dS) of a head
 * into the thread's bf16 tile, and the same GEMMs run on those with fp32 accumulation
 * (af_gemm_bf16); scores, softmax, dropout and the softmax backward stay fp32 on fp32 tiles. */
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
 * stays B*NH*T*T: one tile per possible thread of a team capped at B*NH. After them, for
 * AF_PREC_BF16: qkv and dout rounded to bf16, and a bf16 T x T tile per thread. */
typedef struct {
  float *tiles;       /* [B*NH][T*T] */
  uint16_t *qkv16;    /* [B*T*3C] */
  uint16_t *dout16;   /* [B*T*C] */
  uint16_t *tiles16;  /* [B*NH][T*T] */
} att_scratch;

static size_t up32(size_t n) { return (n + 31) & ~(size_t)31; } /* uint16 counts, 64-byte steps */

static att_scratch carve(float *scratch, int B, int T, int C, int NH) {
  const size_t tiles = (size_t)B * NH * T * T, btc = (size_t)B * T * C;
  att_scratch a;
  a.tiles = scratch;
  a.qkv16 = (uint16_t *)(scratch + tiles);
  a.dout16 = a.qkv16 + up32(3 * btc);
  a.tiles16 = a.dout16 + up32(btc);
  return a;
}

size_t af_cpu_attention_scratch_floats(int B, int T, int C, int NH) {
  const size_t tiles = (size_t)B * NH * T * T, btc = (size_t)B * T * C;
  return tiles + (up32(3 * btc) + up32(btc) + up32(tiles)) / 2;
}

/* The (b, h) loops run at most B*NH threads, so thread numbers index distinct tiles. */
static int team_size(int B, int NH) {
  int t = omp_get_max_threads();
  return t < B * NH ? t : B * NH;
}

static float *thread_tile(float *scratch, int T) { return scratch + (size_t)omp_get_thread_num() * T * T; }
static uint16_t *thread_tile16(const att_scratch *s, int T) { return s->tiles16 + (size_t)omp_get_thread_num() * T * T; }

static int kv_len(const float *mask_b, int T) {
  if (!mask_b) return T;
  int kv = 0;
  for (int j = 0; j < T; j++)
    if (mask_b[j] != 0.0f) kv = j + 1;
  return kv;
}

/* One head of the forward: S = scale q k^T over the first kv keys, softmax, dropout, o = P v.
 * q, k, v are the head's columns of qkv (row stride 3C), or of its bf16 copy (q16..v16) when
 * prec is BF16; S[T,T] is the head's slice of att, o the head's columns of out (stride C). */
typedef struct {
  const float *q, *k, *v;
  const uint16_t *q16, *k16, *v16;
  float *S, *o;
  const float *mb;  /* the row's mask, or NULL */
  int kv;
  uint64_t base;    /* dropout counter of element (0, 0) of S */
} att_head;

static void head_forward(const att_head *h, const att_scratch *sc, int T, int C, int HS, float scale, float p,
                         float ds, uint64_t seed, af_precision prec) {
  const int C3 = 3 * C, kv = h->kv;
  if (prec == AF_PREC_BF16) af_gemm_bf16(0, 1, T, kv, HS, scale, h->q16, C3, h->k16, C3, 0.0f, h->S, T);
  else af_sgemm(0, 1, T, kv, HS, scale, h->q, C3, h->k, C3, 0.0f, h->S, T);
  softmax_rows(h->S, T, kv, h->mb);
  const float *P = h->S;
  if (p > 0.0f) {
    float *Pd = thread_tile(sc->tiles, T);
    dropout_rows(Pd, h->S, T, kv, seed, h->base, p, ds);
    P = Pd;
  }
  if (prec == AF_PREC_BF16) {
    uint16_t *P16 = thread_tile16(sc, T);
    af_f32_to_bf16_rows(P16, T, P, T, T, kv);
    af_gemm_bf16(0, 0, T, HS, kv, 1.0f, P16, T, h->v16, C3, 0.0f, h->o, C);
  } else {
    af_sgemm(0, 0, T, HS, kv, 1.0f, P, T, h->v, C3, 0.0f, h->o, C);
  }
}

/* Head bh's pointers into qkv/out/att (and the bf16 copy of qkv; qkv is NULL when only
 * that copy exists) */
static att_head head_at(int bh, const float *qkv, const uint16_t *qkv16, float *att, float *out, const float *mask,
                        int T, int C, int NH, uint64_t offset) {
  const int HS = C / NH, C3 = 3 * C, b = bh / NH, h = bh % NH;
  att_head a;
  a.mb = mask ? mask + (size_t)b * T : NULL;
  a.kv = kv_len(a.mb, T);
  a.q = qkv ? qkv + (size_t)b * T * C3 + h * HS : NULL;
  a.k = qkv ? a.q + C : NULL, a.v = qkv ? a.q + 2 * C : NULL;
  a.q16 = qkv16 + (size_t)b * T * C3 + h * HS, a.k16 = a.q16 + C, a.v16 = a.q16 + 2 * C;
  a.S = att + (size_t)bh * T * T;
  a.o = out ? out + (size_t)b * T * C + h * HS : NULL;
  a.base = offset + (uint64_t)bh * T * T;
  return a;
}

/* qkv's fp32 and bf16 views for a call: a stored bf16 qkv is used as it is (and forces the
 * bf16 GEMMs), an fp32 one is rounded into the scratch under AF_PREC_BF16. */
static const uint16_t *qkv_bf16(const void *qkv, af_store st, const att_scratch *sc, int B, int T, int C,
                                af_precision *prec) {
  if (st == AF_STORE_BF16) {
    *prec = AF_PREC_BF16;
    return qkv;
  }
  if (*prec == AF_PREC_BF16) af_f32_to_bf16_rows(sc->qkv16, 3 * C, qkv, 3 * C, (long)B * T, 3 * C);
  return sc->qkv16;
}

/* out[B,T,C], att[B,NH,T,T], qkv[B,T,3C] (fp32 or bf16), mask[B,T] (NULL: no padding),
 * scratch as sized above */
void af_cpu_attention_forward(af_backend *be, float *out, float *att, const void *qkv, af_store qkv_store,
                              const float *mask, float *scratch, int B, int T, int C, int NH,
                              float dropout_p, uint64_t seed, uint64_t offset, af_precision prec) {
  (void)be;
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  const float ds = dropout_p > 0.0f ? 1.0f / (1.0f - dropout_p) : 1.0f;
  const att_scratch sc = carve(scratch, B, T, C, NH);
  const uint16_t *q16 = qkv_bf16(qkv, qkv_store, &sc, B, T, C, &prec);
  const float *q32 = qkv_store == AF_STORE_BF16 ? NULL : qkv;
  af_gemm_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_size(B, NH))
  for (int bh = 0; bh < B * NH; bh++) {
    const att_head h = head_at(bh, q32, q16, att, out, mask, T, C, NH, offset);
    if (h.kv == 0) { /* no real key at all: zero probabilities, zero output */
      memset(h.S, 0, (size_t)T * T * sizeof(float));
      for (int i = 0; i < T; i++) memset(h.o + (size_t)i * C, 0, (size_t)HS * sizeof(float));
      continue;
    }
    head_forward(&h, &sc, T, C, HS, scale, dropout_p, ds, seed, prec);
  }
  af_gemm_serial_end();
}

/* One head of the backward: D is the thread's fp32 tile; dq, dk, dv the head's columns of
 * dqkv (stride 3C) and dO of dout (stride C), with its bf16 copy dO16 for BF16. */
static void head_backward(const att_head *h, const att_scratch *sc, float *dq, float *dk, float *dv, const float *dO,
                          const uint16_t *dO16, int T, int C, int HS, float scale, float p, float ds, uint64_t seed,
                          af_precision prec) {
  const int C3 = 3 * C, kv = h->kv, bf = prec == AF_PREC_BF16;
  const float *P = h->S;
  float *D = thread_tile(sc->tiles, T);
  uint16_t *T16 = bf ? thread_tile16(sc, T) : NULL;
  /* dV = Pdrop^T dO */
  const float *Pd = P;
  if (p > 0.0f) {
    dropout_rows(D, P, T, kv, seed, h->base, p, ds);
    Pd = D;
  }
  if (bf) {
    af_f32_to_bf16_rows(T16, T, Pd, T, T, kv);
    af_gemm_bf16(1, 0, kv, HS, T, 1.0f, T16, T, dO16, C, 0.0f, dv, C3);
    af_gemm_bf16(0, 1, T, kv, HS, 1.0f, dO16, C, h->v16, C3, 0.0f, D, T);
  } else {
    af_sgemm(1, 0, kv, HS, T, 1.0f, Pd, T, dO, C, 0.0f, dv, C3);
    /* dPdrop = dO V^T, then dP = dropout'(dPdrop), dS = P (dP - rowsum(P dP)) */
    af_sgemm(0, 1, T, kv, HS, 1.0f, dO, C, h->v, C3, 0.0f, D, T);
  }
  softmax_bwd_rows(D, P, T, kv, p > 0.0f, seed, h->base, p, ds);
  /* dQ = scale dS K, dK = scale dS^T Q */
  if (bf) {
    af_f32_to_bf16_rows(T16, T, D, T, T, kv);
    af_gemm_bf16(0, 0, T, HS, kv, scale, T16, T, h->k16, C3, 0.0f, dq, C3);
    af_gemm_bf16(1, 0, kv, HS, T, scale, T16, T, h->q16, C3, 0.0f, dk, C3);
  } else {
    af_sgemm(0, 0, T, HS, kv, scale, D, T, h->k, C3, 0.0f, dq, C3);
    af_sgemm(1, 0, kv, HS, T, scale, D, T, h->q, C3, 0.0f, dk, C3);
  }
}

/* dqkv[B,T,3C] overwritten; dout[B,T,C]; qkv, att, mask as in forward; scratch as sized above */
void af_cpu_attention_backward(af_backend *be, float *dqkv, const float *dout, const void *qkv,
                               af_store qkv_store, const float *att, const float *mask, float *scratch,
                               int B, int T, int C, int NH, float dropout_p, uint64_t seed,
                               uint64_t offset, af_precision prec) {
  (void)be;
  const int HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / sqrtf((float)HS);
  const float ds = dropout_p > 0.0f ? 1.0f / (1.0f - dropout_p) : 1.0f;
  const att_scratch sc = carve(scratch, B, T, C, NH);
  const uint16_t *q16 = qkv_bf16(qkv, qkv_store, &sc, B, T, C, &prec);
  const float *q32 = qkv_store == AF_STORE_BF16 ? NULL : qkv;
  if (prec == AF_PREC_BF16) af_f32_to_bf16_rows(sc.dout16, C, dout, C, (long)B * T, C);
  af_gemm_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team_size(B, NH))
  for (int bh = 0; bh < B * NH; bh++) {
    const int b = bh / NH, hh = bh % NH;
    /* att is read only: head_at's S is the head's probabilities */
    const att_head h = head_at(bh, q32, q16, (float *)att, NULL, mask, T, C, NH, offset);
    float *dq = dqkv + (size_t)b * T * C3 + hh * HS, *dk = dq + C, *dv = dq + 2 * C;
    const size_t oo = (size_t)b * T * C + hh * HS;
    /* keys past kv get no gradient; with kv == 0 nothing does */
    for (int j = h.kv; j < T; j++) {
      memset(dk + (size_t)j * C3, 0, (size_t)HS * sizeof(float));
      memset(dv + (size_t)j * C3, 0, (size_t)HS * sizeof(float));
    }
    if (h.kv == 0) {
      for (int i = 0; i < T; i++) memset(dq + (size_t)i * C3, 0, (size_t)HS * sizeof(float));
      continue;
    }
    head_backward(&h, &sc, dq, dk, dv, dout + oo, sc.dout16 + oo, T, C, HS, scale, dropout_p, ds, seed, prec);
  }
  af_gemm_serial_end();
}
