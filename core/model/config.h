/* The model configuration read from a Hugging Face config.json (BERT family). */
#ifndef AF_CONFIG_H
#define AF_CONFIG_H
#include "core/base/status.h"
#include "kernels/ops.h"

typedef struct {
  int hidden_size;               /* C */
  int num_hidden_layers;         /* L */
  int num_attention_heads;       /* NH */
  int intermediate_size;         /* I */
  int vocab_size;                /* V */
  int max_position_embeddings;   /* P */
  int type_vocab_size;           /* TV */
  float layer_norm_eps;
  af_gelu_kind hidden_act;       /* "gelu" -> AF_GELU_ERF, "gelu_new"/"gelu_pytorch_tanh" -> AF_GELU_TANH */
  float hidden_dropout_prob;
  float attention_probs_dropout_prob;
  float classifier_dropout;      /* < 0: null in config, use hidden_dropout_prob */
  float initializer_range;
  int num_labels;                /* from config if present (id2label/num_labels), else 0 */
  int pad_token_id;
  char model_type[32];
  const char *const *label_names; /* [num_labels] for config.json's id2label when saving; NULL: LABEL_i.
                                     Not owned; config loading leaves it NULL */
} af_config;

/* Parse path (config.json). Errors name the file and the key. */
af_status af_config_load(const char *path, af_config *cfg);
/* Validate internal consistency (hidden % heads == 0, positive sizes). */
af_status af_config_check(const af_config *cfg, const char *path);
/* Write a config.json (for export), num_labels included. */
af_status af_config_save(const char *path, const af_config *cfg);
/* A few built-in shapes for benchmarks and tests: "tiny", "minilm-l6", "bert-base". */
af_status af_config_named(const char *name, af_config *cfg);

#endif
