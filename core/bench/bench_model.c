/* Model shape and weights for the benchmarks; see bench_model.h. */
#include "core/bench/bench_model.h"
#include <stdio.h>
#include "core/model/checkpoint.h"

af_status af_bench_config(const char *model_dir, const char *config_name, af_config *cfg) {
  if (!model_dir) return af_config_named(config_name, cfg);
  char path[4200];
  snprintf(path, sizeof path, "%s/config.json", model_dir);
  return af_config_load(path, cfg);
}

af_status af_bench_params(const char *model_dir, const af_config *cfg, const af_param_layout *lay, float *params) {
  if (model_dir) return af_checkpoint_load(model_dir, cfg, lay, params, 1, NULL, 0);
  for (size_t i = 0; i < lay->total; i++)
    params[i] = 0.02f * ((float)(af_rng_mix(42, i) >> 40) / 16777216.0f - 0.5f);
  return AF_OK;
}
