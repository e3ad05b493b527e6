/* What the step and cache benchmarks share: the model's shape from --model DIR or
 * --config NAME, and its weights from the checkpoint or, for a named shape, seeded
 * uniform values (the benchmarks time shapes, not accuracy). */
#ifndef AF_BENCH_MODEL_H
#define AF_BENCH_MODEL_H
#include "core/model/config.h"
#include "core/model/params.h"

/* Exactly one of model_dir and config_name is non-NULL. */
af_status af_bench_config(const char *model_dir, const char *config_name, af_config *cfg);
/* params[lay->total] on the host. */
af_status af_bench_params(const char *model_dir, const af_config *cfg, const af_param_layout *lay, float *params);
#endif
