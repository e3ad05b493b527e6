/* Builds the parameter table (names, shapes, offsets) for a config; see params.h. */
#include "core/model/params.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
static void add(af_param_layout *lay, size_t *off, int group, int decay, int d0, int d1, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void add(af_param_layout *lay, size_t *off, int group, int decay, int d0, int d1, const char *fmt, ...) {
  af_param_info *p = &lay->t[lay->n++];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->name, sizeof p->name, fmt, ap);
  va_end(ap);
  p->ndim = d1 > 0 ? 2 : 1;
  p->shape[0] = d0;
  p->shape[1] = d1 > 0 ? d1 : 0;
  p->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
  p->offset = *off;
  p->group = group;
  p->decay = decay;
  *off += p->numel;
}

af_status af_param_layout_build(const af_config *cfg, int num_labels, af_param_layout *lay) {
  memset(lay, 0, sizeof *lay);
  int L = cfg->num_hidden_layers, C = cfg->hidden_size, I = cfg->intermediate_size;
  if (num_labels < 1) return AF_FAIL(AF_ERR_ARG, "num_labels must be >= 1, got %d", num_labels);
  int n = AF_EP_COUNT + L * AF_LP_COUNT + AF_HP_COUNT;
  AF_TRY(af_calloc((void **)&lay->t, (size_t)n, sizeof *lay->t, "parameter table"));
  if (af_calloc((void **)&lay->group_begin, (size_t)L + 4, sizeof(size_t), "parameter groups") != AF_OK) {
    free(lay->t);
    lay->t = NULL;
    return AF_ERR_NOMEM;
  }
  lay->L = L;
  size_t off = 0;
  lay->group_begin[0] = off;
  add(lay, &off, AF_GROUP_EMBEDDINGS, 1, cfg->vocab_size, C, "embeddings.word_embeddings.weight");
  add(lay, &off, AF_GROUP_EMBEDDINGS, 1, cfg->max_position_embeddings, C, "embeddings.position_embeddings.weight");
  add(lay, &off, AF_GROUP_EMBEDDINGS, 1, cfg->type_vocab_size, C, "embeddings.token_type_embeddings.weight");
  add(lay, &off, AF_GROUP_EMBEDDINGS, 0, C, 0, "embeddings.LayerNorm.weight");
  add(lay, &off, AF_GROUP_EMBEDDINGS, 0, C, 0, "embeddings.LayerNorm.bias");
  for (int l = 0; l < L; l++) {
    lay->group_begin[l + 1] = off;
    const char *e = "encoder.layer";
    add(lay, &off, l, 1, C, C, "%s.%d.attention.self.query.weight", e, l);
    add(lay, &off, l, 1, C, C, "%s.%d.attention.self.key.weight", e, l);
    add(lay, &off, l, 1, C, C, "%s.%d.attention.self.value.weight", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.self.query.bias", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.self.key.bias", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.self.value.bias", e, l);
    add(lay, &off, l, 1, C, C, "%s.%d.attention.output.dense.weight", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.output.dense.bias", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.output.LayerNorm.weight", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.attention.output.LayerNorm.bias", e, l);
    add(lay, &off, l, 1, I, C, "%s.%d.intermediate.dense.weight", e, l);
    add(lay, &off, l, 0, I, 0, "%s.%d.intermediate.dense.bias", e, l);
    add(lay, &off, l, 1, C, I, "%s.%d.output.dense.weight", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.output.dense.bias", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.output.LayerNorm.weight", e, l);
    add(lay, &off, l, 0, C, 0, "%s.%d.output.LayerNorm.bias", e, l);
  }
  lay->group_begin[L + 1] = off;
  add(lay, &off, AF_GROUP_POOLER(L), 1, C, C, "pooler.dense.weight");
  add(lay, &off, AF_GROUP_POOLER(L), 0, C, 0, "pooler.dense.bias");
  lay->group_begin[L + 2] = off;
  add(lay, &off, AF_GROUP_CLASSIFIER(L), 1, num_labels, C, "classifier.weight");
  add(lay, &off, AF_GROUP_CLASSIFIER(L), 0, num_labels, 0, "classifier.bias");
  lay->group_begin[L + 3] = off;
  lay->total = off;
  return AF_OK;
}

void af_param_layout_free(af_param_layout *lay) {
  if (!lay) return;
  free(lay->t);
  free(lay->group_begin);
  lay->t = NULL;
  lay->group_begin = NULL;
  lay->n = 0;
}

int af_param_find(const af_param_layout *lay, const char *name) {
  for (int i = 0; i < lay->n; i++)
    if (strcmp(lay->t[i].name, name) == 0) return i;
  return -1;
}
