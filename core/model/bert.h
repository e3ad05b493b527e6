/* The BERT classifier (post-LayerNorm encoder, pooler, classification/regression head)
 * written once over the op table in kernels/ops.h. Forward can start at any layer k from
 * a given hidden state (the activation cache uses this); backward stops at the first
 * trainable layer, so frozen layers and embeddings run no backward at all.
 *
 * Memory: parameters, gradients, AdamW moments and the interval gradient accumulator are
 * each one backend arena with per-tensor views from core/model/params.h; activations are one
 * more arena sized for (max_batch, max_tokens) up front, with per-layer slots only for
 * layers that may train (>= min_depth); nothing is allocated inside a step. Under bf16
 * precision the slots keep the activations that backward reads only as GEMM operands (qkv,
 * attention context, LayerNorm 1 output, GELU output) in bf16, the bits the bf16 GEMMs
 * round them to anyway. */
#ifndef AF_BERT_H
#define AF_BERT_H
#include <stdint.h>
#include "core/model/config.h"
#include "core/model/params.h"
#include "kernels/ops.h"

typedef struct af_bert_acts af_bert_acts;

typedef struct {
  af_config cfg;
  int num_labels;           /* NL; 1 = regression (MSE) */
  af_param_layout lay;
  af_backend *be;           /* not owned */
  float *params, *grads;    /* [lay.total] */
  float *m, *v;             /* AdamW moments [lay.total] */
  float *acc;               /* interval gradient sum, encoder layers only: [enc_end - enc_begin] */
  size_t enc_begin, enc_end;/* float range of the encoder layers in the arena */
  int max_B, max_T, min_depth;
  int frozen_dropout;       /* 1: frozen layers and embeddings keep their dropout in training
                               forwards (no backward still); their output is then not fixed */
  int row0;                 /* dropout counters start at this row of the micro-batch (0; a data-
                               parallel rank: its slice's first row, see core/run/dist.h) */
  af_precision precision;   /* the GEMMs of every layer, the head and all backward GEMMs
                               (kernels/ops.h: bf16 inputs, fp32 accumulation); 0 = FP32.
                               Set both with af_bert_set_precision (the activation layout
                               follows precision) */
  af_precision frozen_precision; /* also the frozen prefix's forward (layers < depth, and
                               af_bert_forward_prefix) when BF16; precision BF16 implies it */
  /* Called by af_bert_backward each time a range [begin, end) of the gradient arena (floats)
   * is final for this backward: the head, then each trainable layer from the last down, then
   * the embeddings (depth 0); each range ends where the one before began. NULL (one process):
   * not called. A data-parallel run starts its all-reduce buckets from it (grad_sync.h). */
  af_status (*grads_ready)(void *ctx, size_t begin, size_t end);
  void *grads_ready_ctx;
  af_bert_acts *a;          /* activation arena and views */
} af_bert;

/* Allocates the arenas on be. min_depth: layers below it never train in this run (their
 * activations are not kept). Parameters are zero until loaded or set. */
af_status af_bert_init(af_bert *m, af_backend *be, const af_config *cfg, int num_labels,
                       int max_B, int max_T, int min_depth);
void af_bert_free(af_bert *m);  /* safe on a zeroed or already-freed struct */

/* Sets precision and frozen_precision. Precision BF16 lays the activation arena out for
 * bf16 storage (2 bytes less per value of qkv, context, LayerNorm 1 output and GELU output,
 * per token and trainable layer), FP32 for fp32 storage; a change of layout reallocates the arena, so the
 * batch, loaded hidden states and the last forward are gone (load them again). Results are
 * bit-identical to bf16 precision over fp32 storage. On failure the old layout is kept. */
af_status af_bert_set_precision(af_bert *m, af_precision precision, af_precision frozen_precision);
/* Bytes of the activation arena (for memory reports). */
size_t af_bert_activation_bytes(const af_bert *m);

/* Parameters from/to a host arena of lay.total floats. */
af_status af_bert_set_params(af_bert *m, const float *host);
af_status af_bert_get_params(const af_bert *m, float *host);

/* One batch on the host; all arrays have B*T entries but targets (B). */
typedef struct {
  const int32_t *ids, *type_ids;
  const float *mask;     /* 1 real token, 0 padding */
  const float *targets;  /* class index as float, or regression target */
  int B, T;
} af_bert_input;

/* Copies the batch to the backend. */
af_status af_bert_load_batch(af_bert *m, const af_bert_input *b);
/* Sets the hidden state entering layer k ([B,T,C] host, padded rows may be 0) for a
 * forward that starts at k. */
af_status af_bert_load_hidden(af_bert *m, int k, const float *host, int B, int T);
/* Device pointer to the hidden state entering layer k (k = L: last layer's output). */
float *af_bert_hidden(af_bert *m, int k);

/* Forward from layer `start` (0 = from token ids; else from af_bert_load_hidden) to the
 * loss. Layers < depth (and the embeddings when depth > 0) run in evaluation mode (no
 * dropout) unless m->frozen_dropout; train = 0 turns dropout off everywhere. seed selects
 * the dropout masks. Writes the mean loss over the batch to *loss (host). */
af_status af_bert_forward(af_bert *m, int B, int T, int start, int depth, int train, uint64_t seed,
                          float *loss);
/* Only the frozen prefix, in evaluation mode: from layer `start` (0 = the token ids; else
 * af_bert_load_hidden) through layer end-1, leaving the hidden state entering layer `end`
 * in af_bert_hidden(m, end). The activation cache fills and advances its entries with it. */
af_status af_bert_forward_prefix(af_bert *m, int B, int T, int start, int end);
/* Logits [B, NL] of the last forward, to the host. */
af_status af_bert_logits(af_bert *m, int B, float *host);
/* Backward of the last forward: parameter gradients of layers >= depth, pooler and
 * classifier (and embeddings when depth == 0) are ACCUMULATED, scaled by loss_scale
 * (1/examples in the optimizer batch). Must follow a forward with the same depth. */
af_status af_bert_backward(af_bert *m, int B, int T, int depth, uint64_t seed, float loss_scale);

/* Float offset where trainable parameters begin at depth k. */
size_t af_bert_trainable_begin(const af_bert *m, int depth);

#endif
