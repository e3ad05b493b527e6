/* BERT forward/backward over the op table; see bert.h for the memory layout. Buffer shapes
 * are noted where each is carved: N = B*T rows of the current batch, sized for max_B*max_T. */
#include "core/model/bert.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Per-layer activations kept for backward. With bf16 storage (af_bert_set_precision: BF16)
 * the four that backward reads only as GEMM operands are kept as bf16 in qkv16, ctx16, h116
 * and act16, and qkv, ctx, h1, act point at the fp32 scratch every layer's forward shares. */
typedef struct {
  float *qkv;            /* [N,3C] */
  float *att;            /* [B,NH,T,T] softmax probabilities */
  float *ctx;            /* [N,C] attention context, before the output projection */
  uint16_t *qkv16, *ctx16, *h116, *act16;  /* [N,3C], [N,C], [N,C], [N,I] bf16 storage, or NULL */
  float *res1;           /* [N,C] x + dropout(proj(ctx)), LayerNorm 1 input */
  float *ln1_mean, *ln1_rstd;  /* [N] */
  float *h1;             /* [N,C] LayerNorm 1 output, FFN input */
  float *pre;            /* [N,I] intermediate pre-activation */
  float *act;            /* [N,I] GELU output */
  float *res2;           /* [N,C] h1 + dropout(ffn), LayerNorm 2 input */
  float *ln2_mean, *ln2_rstd;  /* [N] */
} layer_acts;

struct af_bert_acts {
  float *arena;
  int32_t *ids, *type_ids;  /* [N] */
  float *mask;              /* [N] */
  float *targets;           /* [B] */
  float *emb_sum;           /* [N,C] word+pos+type, embedding LayerNorm input */
  float *emb_mean, *emb_rstd;  /* [N] */
  float **h;                /* [L+1] x [N,C]: h[k] enters layer k; h[L] is the encoder output */
  layer_acts *layer;        /* [L]; slots below min_depth alias `frozen` */
  layer_acts frozen;        /* scratch reused by every frozen layer */
  float *att_scratch;       /* attention_scratch_floats(max_B, max_T, C, NH) */
  /* head */
  float *cls, *pool_pre, *pooled, *pooled_d;  /* [B,C] */
  float *logits, *probs, *losses;             /* [B,NL], [B,NL], [B] */
  /* gradient scratch shared by all layers */
  float *dA, *dB, *dC, *dD;   /* [N,C] */
  float *dqkv;                /* [N,3C] */
  float *dI1, *dI2;           /* [N,I] */
  float *dlogits;             /* [B,NL] */
  float *dh1, *dh2, *dh3;     /* [B,C] head gradients */
  int fwd_B, fwd_T, fwd_depth, fwd_train; /* what the last forward did */
  int save16;               /* trainable layers keep qkv, ctx, h1, act in bf16 (layer_acts) */
  size_t bytes;             /* of the arena */
};

/* Dropout sites: each gets its own counter range so masks never repeat within a step. */
enum { SITE_EMB = 0, SITE_CLS = 1, SITE_LAYER0 = 2 };
enum { SUB_ATT = 0, SUB_PROJ = 1, SUB_FFN = 2 };
static uint64_t site_offset(int site) { return (uint64_t)site << 40; }
static uint64_t layer_site(int l, int sub) { return site_offset(SITE_LAYER0 + 3 * l + sub); }
/* A data-parallel rank runs rows [row0, row0 + B) of a micro-batch: each op's counters are
 * shifted by row0 rows (per_row counters a row), so its masks are those of the whole batch. */
static uint64_t row_shift(const af_bert *m, size_t per_row) { return (uint64_t)m->row0 * per_row; }

/* ---- arena carving: two passes over the same plan, one to count, one to assign ---- */
typedef struct { float *base; size_t used; } carver;
static float *take(carver *c, size_t n) {
  n = (n + 15) & ~(size_t)15;  /* 64-byte alignment for vector loads */
  float *p = c->base ? c->base + c->used : NULL;
  c->used += n;
  return p;
}

/* bf16 storage for n values, carved in floats (two per float) */
static uint16_t *take16(carver *c, size_t n) { return (uint16_t *)take(c, (n + 1) / 2); }

/* shared: NULL, or the slot whose fp32 qkv, ctx, h1, act this one borrows (bf16 storage) */
static void plan_layer(carver *c, layer_acts *la, const layer_acts *shared, size_t N, int B, int T, int C, int NH,
                       int I) {
  la->qkv = shared ? shared->qkv : take(c, N * 3 * C);
  la->qkv16 = shared ? take16(c, N * 3 * C) : NULL;
  la->att = take(c, (size_t)B * NH * T * T);
  la->ctx = shared ? shared->ctx : take(c, N * C);
  la->ctx16 = shared ? take16(c, N * C) : NULL;
  la->res1 = take(c, N * C);
  la->ln1_mean = take(c, N);
  la->ln1_rstd = take(c, N);
  la->h1 = shared ? shared->h1 : take(c, N * C);
  la->h116 = shared ? take16(c, N * C) : NULL;
  la->pre = take(c, N * I);
  la->act = shared ? shared->act : take(c, N * I);
  la->act16 = shared ? take16(c, N * I) : NULL;
  la->res2 = take(c, N * C);
  la->ln2_mean = take(c, N);
  la->ln2_rstd = take(c, N);
}

static void plan(carver *c, af_bert_acts *a, const af_bert *m) {
  const int B = m->max_B, T = m->max_T, C = m->cfg.hidden_size, NH = m->cfg.num_attention_heads;
  const int I = m->cfg.intermediate_size, L = m->cfg.num_hidden_layers, NL = m->num_labels;
  const size_t N = (size_t)B * T;
  a->ids = (int32_t *)take(c, N);  /* int32 and float are both 4 bytes */
  a->type_ids = (int32_t *)take(c, N);
  a->mask = take(c, N);
  a->targets = take(c, (size_t)B);
  a->emb_sum = take(c, N * C);
  a->emb_mean = take(c, N);
  a->emb_rstd = take(c, N);
  for (int k = 0; k <= L; k++) a->h[k] = take(c, N * C);
  plan_layer(c, &a->frozen, NULL, N, B, T, C, NH, I);
  for (int l = 0; l < L; l++) {
    if (l < m->min_depth) a->layer[l] = a->frozen;
    else plan_layer(c, &a->layer[l], a->save16 ? &a->frozen : NULL, N, B, T, C, NH, I);
  }
  a->att_scratch = take(c, m->be->attention_scratch_floats(B, T, C, NH));
  a->cls = take(c, (size_t)B * C);
  a->pool_pre = take(c, (size_t)B * C);
  a->pooled = take(c, (size_t)B * C);
  a->pooled_d = take(c, (size_t)B * C);
  a->logits = take(c, (size_t)B * NL);
  a->probs = take(c, (size_t)B * NL);
  a->losses = take(c, (size_t)B);
  a->dA = take(c, N * C);
  a->dB = take(c, N * C);
  a->dC = take(c, N * C);
  a->dD = take(c, N * C);
  a->dqkv = take(c, N * 3 * C);
  a->dI1 = take(c, N * I);
  a->dI2 = take(c, N * I);
  a->dlogits = take(c, (size_t)B * NL);
  a->dh1 = take(c, (size_t)B * C);
  a->dh2 = take(c, (size_t)B * C);
  a->dh3 = take(c, (size_t)B * C);
}

/* The activation arena of the current plan (a->save16), carved: count, allocate, assign. */
static af_status arena_alloc(af_bert *m) {
  carver c = {NULL, 0};
  plan(&c, m->a, m);
  m->a->bytes = c.used * sizeof(float);
  AF_TRY(m->be->alloc(m->be, (void **)&m->a->arena, m->a->bytes));
  c = (carver){m->a->arena, 0};
  plan(&c, m->a, m);
  return AF_OK;
}

af_status af_bert_init(af_bert *m, af_backend *be, const af_config *cfg, int num_labels, int max_B,
                       int max_T, int min_depth) {
  memset(m, 0, sizeof *m);
  m->cfg = *cfg;
  m->num_labels = num_labels;
  m->be = be;
  m->max_B = max_B;
  m->max_T = max_T;
  const int L = cfg->num_hidden_layers;
  if (max_B < 1 || max_T < 1)
    return AF_FAIL(AF_ERR_ARG, "batch size and sequence length must be >= 1 (got %d x %d)", max_B, max_T);
  if (max_T > cfg->max_position_embeddings)
    return AF_FAIL(AF_ERR_ARG, "sequence length %d exceeds max_position_embeddings %d of the model",
                   max_T, cfg->max_position_embeddings);
  if (min_depth < 0 || min_depth > L - 1)
    return AF_FAIL(AF_ERR_ARG, "frozen depth %d out of range: the model has %d layers and at least one must train",
                   min_depth, L);
  m->min_depth = min_depth;
  af_status s = af_param_layout_build(cfg, num_labels, &m->lay);
  if (s != AF_OK) return s;
  m->enc_begin = m->lay.group_begin[1];
  m->enc_end = m->lay.group_begin[L + 1];
  const size_t P = m->lay.total * sizeof(float);
  if ((s = be->alloc(be, (void **)&m->params, P)) != AF_OK ||
      (s = be->alloc(be, (void **)&m->grads, P)) != AF_OK ||
      (s = be->alloc(be, (void **)&m->m, P)) != AF_OK ||
      (s = be->alloc(be, (void **)&m->v, P)) != AF_OK ||
      (s = be->alloc(be, (void **)&m->acc, (m->enc_end - m->enc_begin) * sizeof(float))) != AF_OK)
    goto fail;
  if ((s = af_calloc((void **)&m->a, 1, sizeof *m->a, "activations")) != AF_OK ||
      (s = af_calloc((void **)&m->a->h, (size_t)L + 1, sizeof(float *), "activations")) != AF_OK ||
      (s = af_calloc((void **)&m->a->layer, (size_t)L, sizeof(layer_acts), "activations")) != AF_OK)
    goto fail;
  if ((s = arena_alloc(m)) != AF_OK) goto fail;
  return AF_OK;
fail:
  af_bert_free(m);
  return s;
}

af_status af_bert_set_precision(af_bert *m, af_precision precision, af_precision frozen_precision) {
  m->precision = precision;
  m->frozen_precision = frozen_precision;
  const int save16 = precision == AF_PREC_BF16;
  if (save16 == m->a->save16) return AF_OK;
  m->be->free(m->be, m->a->arena);
  m->a->arena = NULL;
  m->a->save16 = save16;
  m->a->fwd_train = 0;
  af_status s = arena_alloc(m);
  if (s != AF_OK) { /* keep a usable model: the old layout back */
    m->a->save16 = !save16;
    m->precision = m->a->save16 ? AF_PREC_BF16 : AF_PREC_FP32;
    if (arena_alloc(m) != AF_OK) m->a->arena = NULL;  /* af_bert_forward refuses to run */
  }
  return s;
}

size_t af_bert_activation_bytes(const af_bert *m) { return m->a->bytes; }

void af_bert_free(af_bert *m) {
  if (!m || !m->be) return;
  af_backend *be = m->be;
  be->free(be, m->params);
  be->free(be, m->grads);
  be->free(be, m->m);
  be->free(be, m->v);
  be->free(be, m->acc);
  if (m->a) {
    be->free(be, m->a->arena);
    free(m->a->h);
    free(m->a->layer);
    free(m->a);
  }
  af_param_layout_free(&m->lay);
  memset(m, 0, sizeof *m);
}

af_status af_bert_set_params(af_bert *m, const float *host) {
  return m->be->to_device(m->be, m->params, host, m->lay.total * sizeof(float));
}
af_status af_bert_get_params(const af_bert *m, float *host) {
  return m->be->to_host(m->be, host, m->params, m->lay.total * sizeof(float));
}

size_t af_bert_trainable_begin(const af_bert *m, int depth) { return af_param_frozen_end(&m->lay, depth); }

static af_status check_shape(const af_bert *m, int B, int T) {
  if (!m->a->arena) return AF_FAIL(AF_ERR_NOMEM, "the model has no activation memory (a failed af_bert_set_precision)");
  if (B < 1 || B > m->max_B || T < 1 || T > m->max_T)
    return AF_FAIL(AF_ERR_ARG, "batch %d x %d tokens exceeds the model's buffers (%d x %d)", B, T, m->max_B, m->max_T);
  return AF_OK;
}

af_status af_bert_load_batch(af_bert *m, const af_bert_input *b) {
  AF_TRY(check_shape(m, b->B, b->T));
  const size_t N = (size_t)b->B * b->T;
  af_backend *be = m->be;
  for (size_t i = 0; i < N; i++) {  /* out-of-range ids would read outside the tables */
    if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab_size)
      return AF_FAIL(AF_ERR_ARG, "token id %d at position %zu is outside the vocabulary (size %d)", b->ids[i], i,
                     m->cfg.vocab_size);
    if (b->type_ids[i] < 0 || b->type_ids[i] >= m->cfg.type_vocab_size)
      return AF_FAIL(AF_ERR_ARG, "token type id %d at position %zu is outside type_vocab_size %d", b->type_ids[i], i,
                     m->cfg.type_vocab_size);
  }
  for (int i = 0; i < b->B; i++) {
    float t = b->targets[i];
    if (m->num_labels > 1 && (!(t >= 0) || t >= m->num_labels || t != floorf(t)))
      return AF_FAIL(AF_ERR_ARG, "label %g of example %d is not a class index in [0, %d)", t, i, m->num_labels);
    if (!isfinite(t)) return AF_FAIL(AF_ERR_ARG, "target of example %d is not finite", i);
  }
  AF_TRY(be->to_device(be, m->a->ids, b->ids, N * sizeof(int32_t)));
  AF_TRY(be->to_device(be, m->a->type_ids, b->type_ids, N * sizeof(int32_t)));
  AF_TRY(be->to_device(be, m->a->mask, b->mask, N * sizeof(float)));
  AF_TRY(be->to_device(be, m->a->targets, b->targets, (size_t)b->B * sizeof(float)));
  return AF_OK;
}

af_status af_bert_load_hidden(af_bert *m, int k, const float *host, int B, int T) {
  AF_TRY(check_shape(m, B, T));
  if (k < 0 || k > m->cfg.num_hidden_layers) return AF_FAIL(AF_ERR_ARG, "layer %d out of range", k);
  return m->be->to_device(m->be, m->a->h[k], host, (size_t)B * T * m->cfg.hidden_size * sizeof(float));
}

float *af_bert_hidden(af_bert *m, int k) { return m->a->h[k]; }

static const float *P(const af_bert *m, int idx) { return m->params + m->lay.t[idx].offset; }
static float *G(const af_bert *m, int idx) { return m->grads + m->lay.t[idx].offset; }

/* The precision of the frozen prefix's forward (layers below the depth, cache fills). */
static af_precision frozen_prec(const af_bert *m) {
  return m->precision == AF_PREC_BF16 || m->frozen_precision == AF_PREC_BF16 ? AF_PREC_BF16 : AF_PREC_FP32;
}

/* keep16: this layer's backward will run and the arena keeps its GEMM operands in bf16:
 * qkv, ctx, h1 and act are rounded into the layer's bf16 slots right after they are made
 * (the bits the bf16 GEMMs round them to anyway); the fp32 values serve the rest of this
 * forward (h1 also feeds the residual) from the shared scratch. */
static void layer_forward(af_bert *m, int l, int B, int T, int train, uint64_t seed, af_precision prec, int keep16) {
  af_backend *be = m->be;
  af_bert_acts *a = m->a;
  layer_acts *la = &a->layer[l];
  const int C = m->cfg.hidden_size, NH = m->cfg.num_attention_heads, I = m->cfg.intermediate_size;
  const int N = B * T;
  const float ph = train ? m->cfg.hidden_dropout_prob : 0.f;
  const float pa = train ? m->cfg.attention_probs_dropout_prob : 0.f;
  const float eps = m->cfg.layer_norm_eps;
  const float *x = a->h[l];
  /* Q|K|V weights and biases are adjacent in the arena: one [3C,C] linear. */
  be->linear_forward(be, la->qkv, x, P(m, af_param_layer(l, AF_LP_QW)), P(m, af_param_layer(l, AF_LP_QB)), N, C, 3 * C,
                     prec);
  if (keep16) be->to_bf16(be, la->qkv16, la->qkv, (size_t)N * 3 * C);
  be->attention_forward(be, la->ctx, la->att, keep16 ? (const void *)la->qkv16 : la->qkv,
                        keep16 ? AF_STORE_BF16 : AF_STORE_F32, a->mask, a->att_scratch, B, T, C, NH, pa, seed,
                        layer_site(l, SUB_ATT) + row_shift(m, (size_t)NH * T * T), prec);
  if (keep16) be->to_bf16(be, la->ctx16, la->ctx, (size_t)N * C);
  be->linear_forward(be, la->res1, la->ctx, P(m, af_param_layer(l, AF_LP_ATTN_OW)), P(m, af_param_layer(l, AF_LP_ATTN_OB)),
                     N, C, C, prec);
  be->dropout_forward(be, la->res1, la->res1, (size_t)N * C, ph, seed, layer_site(l, SUB_PROJ) + row_shift(m, (size_t)T * C));
  be->accumulate(be, la->res1, x, (size_t)N * C);
  be->layernorm_forward(be, la->h1, la->ln1_mean, la->ln1_rstd, la->res1, P(m, af_param_layer(l, AF_LP_ATTN_LNW)),
                        P(m, af_param_layer(l, AF_LP_ATTN_LNB)), N, C, eps);
  if (keep16) be->to_bf16(be, la->h116, la->h1, (size_t)N * C);
  be->linear_forward(be, la->pre, la->h1, P(m, af_param_layer(l, AF_LP_INTER_W)), P(m, af_param_layer(l, AF_LP_INTER_B)),
                     N, C, I, prec);
  be->gelu_forward(be, la->act, la->pre, (size_t)N * I, m->cfg.hidden_act);
  if (keep16) be->to_bf16(be, la->act16, la->act, (size_t)N * I);
  be->linear_forward(be, la->res2, la->act, P(m, af_param_layer(l, AF_LP_OUT_W)), P(m, af_param_layer(l, AF_LP_OUT_B)),
                     N, I, C, prec);
  be->dropout_forward(be, la->res2, la->res2, (size_t)N * C, ph, seed, layer_site(l, SUB_FFN) + row_shift(m, (size_t)T * C));
  be->accumulate(be, la->res2, la->h1, (size_t)N * C);
  be->layernorm_forward(be, a->h[l + 1], la->ln2_mean, la->ln2_rstd, la->res2, P(m, af_param_layer(l, AF_LP_OUT_LNW)),
                        P(m, af_param_layer(l, AF_LP_OUT_LNB)), N, C, eps);
}

af_status af_bert_forward(af_bert *m, int B, int T, int start, int depth, int train, uint64_t seed, float *loss) {
  AF_TRY(check_shape(m, B, T));
  const int L = m->cfg.num_hidden_layers, C = m->cfg.hidden_size, NL = m->num_labels;
  if (depth < m->min_depth || depth > L - 1)
    return AF_FAIL(AF_ERR_ARG, "frozen depth %d outside [%d, %d]", depth, m->min_depth, L - 1);
  if (start < 0 || start > depth)
    return AF_FAIL(AF_ERR_ARG, "forward can start only inside the frozen prefix (start %d, depth %d)", start, depth);
  af_backend *be = m->be;
  af_bert_acts *a = m->a;
  if (a->save16 && m->precision != AF_PREC_BF16)
    return AF_FAIL(AF_ERR_ARG, "the activations are laid out for bf16 storage: change the precision with "
                               "af_bert_set_precision, not by hand");
  const int N = B * T;
  if (start == 0) {
    const float pe = (train && (depth == 0 || m->frozen_dropout)) ? m->cfg.hidden_dropout_prob : 0.f;
    be->embedding_forward(be, a->emb_sum, a->ids, a->type_ids, P(m, af_param_emb(AF_EP_WTE)), P(m, af_param_emb(AF_EP_WPE)),
                          P(m, af_param_emb(AF_EP_WTT)), B, T, C);
    be->layernorm_forward(be, a->h[0], a->emb_mean, a->emb_rstd, a->emb_sum, P(m, af_param_emb(AF_EP_LNW)),
                          P(m, af_param_emb(AF_EP_LNB)), N, C, m->cfg.layer_norm_eps);
    be->dropout_forward(be, a->h[0], a->h[0], (size_t)N * C, pe, seed, site_offset(SITE_EMB) + row_shift(m, (size_t)T * C));
  }
  for (int l = start; l < L; l++)
    layer_forward(m, l, B, T, train && (l >= depth || m->frozen_dropout), seed, l < depth ? frozen_prec(m) : m->precision,
                  a->save16 && train && l >= depth);
  /* head: pooled = tanh(W_p h[CLS] + b_p); logits = W_c dropout(pooled) + b_c */
  const float pc = !train ? 0.f : (m->cfg.classifier_dropout >= 0 ? m->cfg.classifier_dropout : m->cfg.hidden_dropout_prob);
  be->cls_forward(be, a->cls, a->h[L], B, T, C);
  be->linear_forward(be, a->pool_pre, a->cls, P(m, af_param_head(L, AF_HP_POOL_W)), P(m, af_param_head(L, AF_HP_POOL_B)), B, C, C,
                     m->precision);
  be->tanh_forward(be, a->pooled, a->pool_pre, (size_t)B * C);
  be->dropout_forward(be, a->pooled_d, a->pooled, (size_t)B * C, pc, seed, site_offset(SITE_CLS) + row_shift(m, (size_t)C));
  be->linear_forward(be, a->logits, a->pooled_d, P(m, af_param_head(L, AF_HP_CLS_W)), P(m, af_param_head(L, AF_HP_CLS_B)),
                     B, C, NL, m->precision);
  if (NL > 1) be->cross_entropy_forward(be, a->losses, a->probs, a->logits, a->targets, B, NL);
  else be->mse_forward(be, a->losses, a->logits, a->targets, B);
  float host[4096];
  float *lh = B <= 4096 ? host : malloc((size_t)B * sizeof(float));
  if (!lh) return AF_FAIL(AF_ERR_NOMEM, "out of memory for losses");
  af_status s = be->to_host(be, lh, a->losses, (size_t)B * sizeof(float));
  double sum = 0;
  for (int i = 0; i < B && s == AF_OK; i++) sum += lh[i];
  if (lh != host) free(lh);
  AF_TRY(s);
  *loss = (float)(sum / B);
  if (!isfinite(*loss)) return AF_FAIL(AF_ERR_NUMERIC, "the loss is %g (not finite)", *loss);
  a->fwd_B = B;
  a->fwd_T = T;
  a->fwd_depth = depth;
  a->fwd_train = train;
  return AF_OK;
}

af_status af_bert_forward_prefix(af_bert *m, int B, int T, int start, int end) {
  AF_TRY(check_shape(m, B, T));
  const int L = m->cfg.num_hidden_layers, C = m->cfg.hidden_size;
  if (start < 0 || end > L || start > end)
    return AF_FAIL(AF_ERR_ARG, "prefix forward from layer %d to %d outside 0..%d", start, end, L);
  af_backend *be = m->be;
  af_bert_acts *a = m->a;
  if (start == 0) {
    be->embedding_forward(be, a->emb_sum, a->ids, a->type_ids, P(m, af_param_emb(AF_EP_WTE)), P(m, af_param_emb(AF_EP_WPE)),
                          P(m, af_param_emb(AF_EP_WTT)), B, T, C);
    be->layernorm_forward(be, a->h[0], a->emb_mean, a->emb_rstd, a->emb_sum, P(m, af_param_emb(AF_EP_LNW)),
                          P(m, af_param_emb(AF_EP_LNB)), B * T, C, m->cfg.layer_norm_eps);
  }
  for (int l = start; l < end; l++) layer_forward(m, l, B, T, 0, 0, frozen_prec(m), 0);
  a->fwd_train = 0;  /* a following backward needs a full training forward first */
  return AF_OK;
}

af_status af_bert_logits(af_bert *m, int B, float *host) {
  return m->be->to_host(m->be, host, m->a->logits, (size_t)B * m->num_labels * sizeof(float));
}

/* Backward through layer l, which ran forward in training mode (dropout on). dA holds
 * d h[l+1] on entry and d h[l] on exit (unless need_dinp is 0: then d h[l] is not computed,
 * saving a GEMM). Uses dB..dD, dqkv, dI*. */
static void layer_backward(af_bert *m, int l, int B, int T, uint64_t seed, int need_dinp) {
  af_backend *be = m->be;
  af_bert_acts *a = m->a;
  layer_acts *la = &a->layer[l];
  const int C = m->cfg.hidden_size, NH = m->cfg.num_attention_heads, I = m->cfg.intermediate_size;
  const int N = B * T;
  const size_t NC = (size_t)N * C;
  const float ph = m->cfg.hidden_dropout_prob;
  const float pa = m->cfg.attention_probs_dropout_prob;
  const af_precision prec = m->precision;
  const af_store st = a->save16 ? AF_STORE_BF16 : AF_STORE_F32;
  /* LayerNorm 2: dB = d res2 */
  be->layernorm_backward(be, a->dB, G(m, af_param_layer(l, AF_LP_OUT_LNW)), G(m, af_param_layer(l, AF_LP_OUT_LNB)), a->dA,
                         la->res2, P(m, af_param_layer(l, AF_LP_OUT_LNW)), la->ln2_mean, la->ln2_rstd, N, C);
  /* FFN: res2 = h1 + dropout(W_out gelu(W_in h1)) */
  be->dropout_backward(be, a->dC, a->dB, NC, ph, seed, layer_site(l, SUB_FFN) + row_shift(m, (size_t)T * C));
  be->linear_backward(be, a->dI1, G(m, af_param_layer(l, AF_LP_OUT_W)), G(m, af_param_layer(l, AF_LP_OUT_B)), a->dC,
                      a->save16 ? (const void *)la->act16 : la->act, st, P(m, af_param_layer(l, AF_LP_OUT_W)), N, I, C,
                      prec);
  be->gelu_backward(be, a->dI2, a->dI1, la->pre, (size_t)N * I, m->cfg.hidden_act);
  be->linear_backward(be, a->dC, G(m, af_param_layer(l, AF_LP_INTER_W)), G(m, af_param_layer(l, AF_LP_INTER_B)), a->dI2,
                      a->save16 ? (const void *)la->h116 : la->h1, st, P(m, af_param_layer(l, AF_LP_INTER_W)), N, C, I,
                      prec);
  be->add(be, a->dD, a->dB, a->dC, NC);  /* d h1: residual + FFN path */
  /* LayerNorm 1: dB = d res1 */
  be->layernorm_backward(be, a->dB, G(m, af_param_layer(l, AF_LP_ATTN_LNW)), G(m, af_param_layer(l, AF_LP_ATTN_LNB)), a->dD,
                         la->res1, P(m, af_param_layer(l, AF_LP_ATTN_LNW)), la->ln1_mean, la->ln1_rstd, N, C);
  /* attention: res1 = x + dropout(W_o attn(W_qkv x)) */
  be->dropout_backward(be, a->dC, a->dB, NC, ph, seed, layer_site(l, SUB_PROJ) + row_shift(m, (size_t)T * C));
  be->linear_backward(be, a->dD, G(m, af_param_layer(l, AF_LP_ATTN_OW)), G(m, af_param_layer(l, AF_LP_ATTN_OB)), a->dC,
                      a->save16 ? (const void *)la->ctx16 : la->ctx, st, P(m, af_param_layer(l, AF_LP_ATTN_OW)), N,
                      C, C, prec);
  be->attention_backward(be, a->dqkv, a->dD, a->save16 ? (const void *)la->qkv16 : la->qkv, st, la->att, a->mask,
                         a->att_scratch, B, T, C, NH, pa, seed, layer_site(l, SUB_ATT) + row_shift(m, (size_t)NH * T * T),
                         prec);
  be->linear_backward(be, need_dinp ? a->dC : NULL, G(m, af_param_layer(l, AF_LP_QW)), G(m, af_param_layer(l, AF_LP_QB)),
                      a->dqkv, a->h[l], AF_STORE_F32, P(m, af_param_layer(l, AF_LP_QW)), N, C, 3 * C, prec);
  if (need_dinp) be->add(be, a->dA, a->dB, a->dC, NC);
}

/* the hook of a data-parallel run (bert.h: grads_ready); nothing with one process */
static af_status grads_ready(af_bert *m, size_t begin, size_t end) {
  return m->grads_ready ? m->grads_ready(m->grads_ready_ctx, begin, end) : AF_OK;
}

af_status af_bert_backward(af_bert *m, int B, int T, int depth, uint64_t seed, float loss_scale) {
  af_bert_acts *a = m->a;
  if (a->fwd_B != B || a->fwd_T != T || a->fwd_depth != depth || !a->fwd_train)
    return AF_FAIL(AF_ERR_ARG, "backward must follow a training forward of the same batch and depth");
  af_backend *be = m->be;
  const int L = m->cfg.num_hidden_layers, C = m->cfg.hidden_size, NL = m->num_labels;
  const float pc = m->cfg.classifier_dropout >= 0 ? m->cfg.classifier_dropout : m->cfg.hidden_dropout_prob;
  if (NL > 1) be->cross_entropy_backward(be, a->dlogits, a->probs, a->targets, B, NL, loss_scale);
  else be->mse_backward(be, a->dlogits, a->logits, a->targets, B, loss_scale);
  be->linear_backward(be, a->dh1, G(m, af_param_head(L, AF_HP_CLS_W)), G(m, af_param_head(L, AF_HP_CLS_B)), a->dlogits,
                      a->pooled_d, AF_STORE_F32, P(m, af_param_head(L, AF_HP_CLS_W)), B, C, NL, m->precision);
  be->dropout_backward(be, a->dh2, a->dh1, (size_t)B * C, pc, seed, site_offset(SITE_CLS) + row_shift(m, (size_t)C));
  be->tanh_backward(be, a->dh1, a->dh2, a->pooled, (size_t)B * C);
  be->linear_backward(be, a->dh3, G(m, af_param_head(L, AF_HP_POOL_W)), G(m, af_param_head(L, AF_HP_POOL_B)), a->dh1,
                      a->cls, AF_STORE_F32, P(m, af_param_head(L, AF_HP_POOL_W)), B, C, C, m->precision);
  const size_t *gb = m->lay.group_begin;  /* embeddings 0, layer l at l+1, head from L+1 */
  AF_TRY(grads_ready(m, gb[L + 1], m->lay.total));
  be->cls_backward(be, a->dA, a->dh3, B, T, C);
  for (int l = L - 1; l >= depth; l--) {
    layer_backward(m, l, B, T, seed, l > depth || depth == 0);
    AF_TRY(grads_ready(m, gb[l + 1], gb[l + 2]));
  }
  if (depth == 0) {
    const int N = B * T;
    be->dropout_backward(be, a->dB, a->dA, (size_t)N * C, m->cfg.hidden_dropout_prob, seed, site_offset(SITE_EMB) + row_shift(m, (size_t)T * C));
    be->layernorm_backward(be, a->dC, G(m, af_param_emb(AF_EP_LNW)), G(m, af_param_emb(AF_EP_LNB)), a->dB, a->emb_sum,
                           P(m, af_param_emb(AF_EP_LNW)), a->emb_mean, a->emb_rstd, N, C);
    be->embedding_backward(be, G(m, af_param_emb(AF_EP_WTE)), G(m, af_param_emb(AF_EP_WPE)), G(m, af_param_emb(AF_EP_WTT)),
                           a->dC, a->ids, a->type_ids, B, T, C);
    AF_TRY(grads_ready(m, 0, gb[1]));
  }
  return AF_OK;
}
