/* Learning-rate schedules and the two optimizer recipes: values worked out by hand. */
#include <math.h>
#include "core/optim.h"
#include "tests/testutil.h"

static void near(const char *what, double got, double want) {
  if (fabs(got - want) > 1e-6 * fabs(want) + 1e-12) {  /* af_lr_at is float */
    fprintf(stderr, "  %s: got %.10g want %.10g\n", what, got, want);
    af_test_failures++;
  }
}

int main(void) {
  af_optim_opts o;
  af_optim_defaults_hf(&o);
  CHECK(o.bias_correction == 1 && o.clip == AF_CLIP_GLOBAL && o.max_grad_norm == 1.0f && o.weight_decay == 0.01f);
  o.lr = 1.0f;
  o.warmup_frac = 0.1f;
  /* 100 steps, 10 of warm-up: step s < 10 -> (s+1)/10; then (100 - s)/90 */
  near("linear step 0", af_lr_at(&o, 0, 100), 0.1);
  near("linear step 9", af_lr_at(&o, 9, 100), 1.0);
  near("linear step 10", af_lr_at(&o, 10, 100), 1.0);
  near("linear step 55", af_lr_at(&o, 55, 100), 45.0 / 90.0);
  near("linear step 99", af_lr_at(&o, 99, 100), 1.0 / 90.0);
  o.warmup_frac = 0;
  near("no warm-up step 0", af_lr_at(&o, 0, 100), 1.0);

  af_optim_defaults_paper(&o);
  CHECK(o.bias_correction == 0 && o.clip == AF_CLIP_PER_TENSOR && o.eps == 1e-6f && o.lr == 1e-5f);
  o.lr = 1.0f;
  /* the paper: x1 until 30% of the steps, x0.7 until 60%, x0.4 after; no warm-up */
  near("stepped 0", af_lr_at(&o, 0, 100), 1.0);
  near("stepped 29", af_lr_at(&o, 29, 100), 1.0);
  near("stepped 30", af_lr_at(&o, 30, 100), 0.7);
  near("stepped 59", af_lr_at(&o, 59, 100), 0.7);
  near("stepped 60", af_lr_at(&o, 60, 100), 0.4);
  near("stepped 99", af_lr_at(&o, 99, 100), 0.4);
  o.schedule = AF_SCHED_CONSTANT;
  near("constant", af_lr_at(&o, 77, 100), 1.0);
  return af_test_done("test_optim");
}
