/* The parameter table of a BERT classifier: every tensor's Hugging Face name, shape and
 * offset in one contiguous arena. Tensors are laid out embeddings, layer 0..L-1, pooler,
 * classifier, so a frozen prefix (embeddings + layers < k) is one contiguous range, and
 * Q, K, V of a layer sit next to each other as one [3C, C] weight and one [3C] bias. */
#ifndef AF_PARAMS_H
#define AF_PARAMS_H
#include <stddef.h>
#include "core/model/config.h"

/* Group of a tensor: embeddings, an encoder layer (0..L-1), pooler or classifier. */
enum { AF_GROUP_EMBEDDINGS = -1 };
#define AF_GROUP_POOLER(L) (L)
#define AF_GROUP_CLASSIFIER(L) ((L) + 1)

typedef struct {
  char name[96];   /* HF name without the "bert." prefix, e.g. "encoder.layer.3.attention.self.query.weight";
                      the classifier is "classifier.weight"/"classifier.bias" */
  int ndim;
  int shape[2];
  size_t offset;   /* in floats from the arena start */
  size_t numel;
  int group;       /* AF_GROUP_EMBEDDINGS, layer index, AF_GROUP_POOLER(L), AF_GROUP_CLASSIFIER(L) */
  int decay;       /* 1: weight decay applies (not for biases and LayerNorm) */
} af_param_info;

/* Indices of one encoder layer's tensors in the table, in arena order. */
enum {
  AF_LP_QW, AF_LP_KW, AF_LP_VW, AF_LP_QB, AF_LP_KB, AF_LP_VB,
  AF_LP_ATTN_OW, AF_LP_ATTN_OB, AF_LP_ATTN_LNW, AF_LP_ATTN_LNB,
  AF_LP_INTER_W, AF_LP_INTER_B, AF_LP_OUT_W, AF_LP_OUT_B, AF_LP_OUT_LNW, AF_LP_OUT_LNB,
  AF_LP_COUNT
};
enum { AF_EP_WTE, AF_EP_WPE, AF_EP_WTT, AF_EP_LNW, AF_EP_LNB, AF_EP_COUNT };
enum { AF_HP_POOL_W, AF_HP_POOL_B, AF_HP_CLS_W, AF_HP_CLS_B, AF_HP_COUNT };

typedef struct {
  af_param_info *t;   /* [n] */
  int n;
  int L;
  size_t total;       /* floats */
  size_t *group_begin;/* [L + 3]: float offset where embeddings(0), layer l (l+1), pooler (L+1), classifier (L+2) begin; group_begin[L+3] = total */
} af_param_layout;

af_status af_param_layout_build(const af_config *cfg, int num_labels, af_param_layout *lay);
void af_param_layout_free(af_param_layout *lay);
/* Table index of embeddings tensor e, layer l's tensor p, head tensor h. */
static inline int af_param_emb(int e) { return e; }
static inline int af_param_layer(int l, int p) { return AF_EP_COUNT + l * AF_LP_COUNT + p; }
static inline int af_param_head(int L, int h) { return AF_EP_COUNT + L * AF_LP_COUNT + h; }
/* First float of the trainable range when embeddings and layers < k are frozen. */
static inline size_t af_param_frozen_end(const af_param_layout *lay, int k) { return k <= 0 ? 0 : lay->group_begin[k + 1]; }
int af_param_find(const af_param_layout *lay, const char *name);  /* -1 when absent */

#endif
