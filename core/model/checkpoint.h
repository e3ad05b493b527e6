/* Model checkpoints in Hugging Face layout: a directory with config.json, vocab.txt and
 * model.safetensors. Loading fills the parameter arena (core/model/params.h) by tensor name;
 * saving writes a BertForSequenceClassification checkpoint that transformers loads. */
#ifndef AF_CHECKPOINT_H
#define AF_CHECKPOINT_H
#include <stddef.h>
#include <stdint.h>
#include "core/model/config.h"
#include "core/model/params.h"

/* One clear error when model_dir is not a directory or lacks config.json, vocab.txt or
 * model.safetensors. */
af_status af_model_dir_check(const char *model_dir);

/* Read model_dir/model.safetensors into params[lay->total] (host). Names are matched with
 * or without the "bert." prefix, LayerNorm gamma/beta are accepted for weight/bias, extra
 * tensors (position_ids, cls.predictions.*, ...) are ignored. Every shape must match cfg:
 * a mismatch is AF_ERR_FORMAT naming the tensor and both shapes. Missing tensors other than
 * the pooler and classifier are one error listing them. A missing pooler tensor, or a
 * classifier that is absent or sized for another num_labels, is initialised: weights
 * normal(0, cfg->initializer_range) from a counter-based RNG seeded by init_seed
 * (identical run to run), biases zero. report (may be NULL) receives one line saying what
 * was loaded and what was initialised. params may be NULL: validate only (nothing copied). */
af_status af_checkpoint_load(const char *model_dir, const af_config *cfg, const af_param_layout *lay, float *params,
                             uint64_t init_seed, char *report, size_t report_cap);

/* Write out_dir/{config.json, model.safetensors} (F32, HF BertForSequenceClassification
 * names: "bert." prefix except for "classifier.*") and copy vocab.txt (+ tokenizer_config.json
 * and special_tokens_map.json when present) from vocab_src_dir. Creates out_dir (and its
 * parents) if needed. num_labels in config.json is taken from the layout's classifier. */
af_status af_checkpoint_save(const char *out_dir, const char *vocab_src_dir, const af_config *cfg,
                             const af_param_layout *lay, const float *params);

/* dst[i] = std * N(0,1) for i < n, from (seed, stream) by Box-Muller over af_rng_mix:
 * deterministic, independent of thread count and call order. */
void af_init_normal(float *dst, size_t n, float std, uint64_t seed, uint64_t stream);

#endif
