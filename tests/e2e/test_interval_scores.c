/* The per-layer interval scores recorded by a training run (/intervals/l1, /intervals/l2),
 * checked against an independent recomputation through the model API.
 *
 * The algorithm (docs/algorithm.md, "The statistic"): during an interval the
 * gradient of every encoder tensor is summed with its sign over the interval's steps, before
 * clipping and the optimizer step; layer l's score is s_l = sum over its tensors of
 * || sum over steps of g ||_1, and l2 is the L2 norm of its interval-summed gradient.
 *
 * Both runs use the tiny fixture model (tests/fixtures/bert_tiny/cls; its config.json has
 * dropout 0, checked below, so a step's gradient depends only on the parameters and the
 * batch), 40 training rows and batch 16 (batches of 16, 16 and 8: the partial batch has
 * loss scale 1/8), with global clipping to a max norm small enough to be active at every
 * step, so scores taken after clipping would not match.
 *   A  1 epoch, --interval-steps 1: every interval is one step; the first one is one
 *      gradient at the initial parameters, independent of any optimizer replay.
 *   B  2 epochs, 4 intervals over 6 steps (lengths 1 and 2), and a scripted policy that
 *      freezes one layer at the second decision (after step 3, the end of epoch 1): two
 *      intervals sum two steps, one of them with layer 0 frozen.
 *
 * The replay: the same initial parameters (af_checkpoint_load with the run's seed gives the
 * same classifier init), the same batches (the batcher's order depends only on the seed,
 * the epoch and the split, batcher.h), forward/backward at the recorded depth, gradients
 * read to the host and summed there in double per tensor, then af_optim_step with the
 * recorded learning rate so later steps start from the run's parameters. The boundaries
 * and depths are the recorded ones (intervals/step, steps/frozen_depth): where the
 * boundaries fall is checked separately, against the properties the algorithm fixes. The
 * per-layer grouping of tensors comes from af_param_info.group, not the trainer's segment
 * table. Replay fidelity is checked twice: every step's loss equals the recorded loss, and
 * the replay's final parameters equal the run's last checkpoint.
 *
 * Negative controls (each must miss the recorded scores by far more than the tolerance): a
 * layer mapping shifted by one layer, a tensor mapping shifted by one tensor, |g| summed
 * per step (signs dropped), the gradients after clipping, and only the interval's last step
 * (the last two only where an interval has two steps). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/data/batcher.h"
#include "core/model/bert.h"
#include "core/model/checkpoint.h"
#include "core/model/optim.h"
#include "core/results/results_read.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"
#include "core/run/train.h"
#include "core/run/train_ckpt.h"
#include "tests/testutil.h"

enum { N_TRAIN = 40, BATCH = 16, MAX_LEN = 16, SEED = 7, FREEZE_AT = 1, NCTL = 5 };
#define MAX_NORM 0.02f

/* Tolerance for recorded vs recomputed scores. The replay runs the same kernels on the same
 * inputs with the same thread count, so the gradients agree to within fp32 reduction order
 * at worst (~1e-6 relative per element if a reduction were ordered differently; in practice
 * bit for bit, see the final-parameter check). What remains is the summation: the trainer
 * adds the steps' gradients in fp32 (one rounding, <= 2^-24 relative, per element per added
 * step) and sums |.| per tensor in double in its own order; the reference sums in double.
 * For intervals of <= 2 steps that is < 1e-7 of a score. 1e-5 relative leaves a 100x margin;
 * the controls miss by 1e-1 or more. */
#define RTOL 1e-5
#define CONTROL_MIN 1e-3 /* a control must miss some layer by at least this (relative) */

static const char *const ctl_name[NCTL] = {"layer mapping shifted by one layer", "tensor mapping shifted by one tensor",
                                           "|g| summed per step (signs dropped)", "gradients after clipping",
                                           "only the interval's last step"};

/* scripted policy: one more frozen layer at decision FREEZE_AT (0-based interval index) */
static af_status script(af_policy *p, const af_interval_stats *st, int *new_depth) {
  (void)p;
  *new_depth = st->depth + (st->interval == FREEZE_AT);
  return AF_OK;
}

/* per-layer scores from per-tensor (l1, sq) with a tensor->layer map; layers < depth are 0 */
static void layer_scores(const af_param_layout *lay, const double *t_l1, const double *t_sq, int L, int depth,
                         int tensor_shift, int layer_shift, double *l1, double *l2) {
  for (int l = 0; l < L; l++) l1[l] = l2[l] = 0;
  for (int i = 0; i < lay->n; i++) {
    int g = lay->t[i].group;
    if (g < 0 || g >= L) continue;  /* embeddings, pooler and classifier are not scored */
    int src = i + tensor_shift;     /* control: a mapping off by tensor_shift tensors */
    if (src >= lay->n) src = lay->n - 1;
    int l = (g + layer_shift) % L;
    l1[l] += t_l1[src];
    l2[l] += t_sq[src];
  }
  for (int l = 0; l < L; l++) {
    if (l < depth) l1[l] = l2[l] = 0;
    l2[l] = sqrt(l2[l]);
  }
}

/* largest relative difference over layers >= depth (NaN propagates) */
static double max_rel(const double *got, const double *ref, int L, int depth) {
  double m = 0;
  for (int l = depth; l < L; l++) {
    double d = fabs(got[l] - ref[l]) / (fabs(ref[l]) > 1e-300 ? fabs(ref[l]) : 1e-300);
    if (!(d <= m)) m = d;
  }
  return m;
}

/* per-tensor L1 and sum of squares of a double arena */
static void tensor_norms(const af_param_layout *lay, const double *x, double *t_l1, double *t_sq) {
  for (int i = 0; i < lay->n; i++) {
    double a = 0, q = 0;
    for (size_t j = 0; j < lay->t[i].numel; j++) {
      double v = x[lay->t[i].offset + j];
      a += fabs(v);
      q += v * v;
    }
    t_l1[i] = a;
    t_sq[i] = q;
  }
}

typedef struct {
  double *loss, *lr, *depth, *istep, *l1, *l2;
  size_t n_steps, n_iv;
} recorded;

static void recorded_free(recorded *r) {
  free(r->loss);
  free(r->lr);
  free(r->depth);
  free(r->istep);
  free(r->l1);
  free(r->l2);
  memset(r, 0, sizeof *r);
}

/* the run's recorded steps and intervals; 0 when something is missing or inconsistent */
static int read_recorded(const char *out, int L, recorded *r) {
  memset(r, 0, sizeof *r);
  af_results_reader *rr = NULL;
  CHECK_OK(af_results_open_read(out, &rr));
  if (!rr) return 0;
  size_t n1 = 0, n2 = 0, n3 = 0, n4 = 0, rows = 0, cols = 0, rows2 = 0, cols2 = 0;
  CHECK_OK(af_results_read_1d(rr, "steps/loss", &r->loss, &n1));
  CHECK_OK(af_results_read_1d(rr, "steps/lr", &r->lr, &n2));
  CHECK_OK(af_results_read_1d(rr, "steps/frozen_depth", &r->depth, &n3));
  CHECK_OK(af_results_read_1d(rr, "intervals/step", &r->istep, &n4));
  CHECK_OK(af_results_read_2d(rr, "intervals/l1", &r->l1, &rows, &cols));
  CHECK_OK(af_results_read_2d(rr, "intervals/l2", &r->l2, &rows2, &cols2));
  af_results_close_read(&rr);
  r->n_steps = n1;
  r->n_iv = n4;
  int ok = r->loss && r->lr && r->depth && r->istep && r->l1 && r->l2 && n2 == n1 && n3 == n1 && rows == n4 &&
           rows2 == n4 && (int)cols == L && (int)cols2 == L && n4 > 0 && (size_t)r->istep[n4 - 1] == n1;
  for (size_t k = 0; ok && k < n4; k++)  /* boundaries strictly increasing, inside the run */
    ok = r->istep[k] >= 1 && r->istep[k] <= (double)n1 && (k == 0 || r->istep[k] > r->istep[k - 1]);
  CHECK(ok);
  return ok;
}

/* Replays the run recorded in `out` and compares every interval's l1/l2 with the
 * recomputed ones. ctl_min[c] receives the smallest (over intervals) largest (over layers)
 * relative miss of control c (INFINITY where it does not apply). */
static void replay(const char *name, const char *model, const char *data, const char *ckpt, const af_config *cfg,
                   const af_optim_opts *oo, const recorded *rec, double *ctl_min) {
  const int L = cfg->num_hidden_layers;
  for (int c = 0; c < NCTL; c++) ctl_min[c] = INFINITY;
  af_tokenizer *tok = NULL;
  af_task *task = NULL;
  af_split *train = NULL;
  af_backend *be = NULL;
  af_batcher *bt = NULL;
  af_bert m;
  memset(&m, 0, sizeof m);
  CHECK_OK(af_tokenizer_load(model, NULL, &tok));
  if (tok) CHECK_OK(af_task_open("sst2", data, NULL, &task));
  if (task) CHECK_OK(af_task_load(task, "train", tok, MAX_LEN, &train));
  CHECK_OK(af_backend_open("cpu", 1, &be));
  if (be && train) CHECK_OK(af_bert_init(&m, be, cfg, af_task_num_labels(task), BATCH, MAX_LEN, 0));
  af_batcher_opts bo;
  af_batcher_opts_default(&bo);
  bo.batch = BATCH;
  bo.seed = SEED;
  if (train) CHECK_OK(af_batcher_init(&bt, train, &bo));
  if (!m.params || !bt || train->n != N_TRAIN) {
    CHECK(0);
    goto done;
  }
  const af_param_layout *lay = &m.lay;
  const size_t P = lay->total, nb = af_batcher_num_batches(bt);
  CHECK(nb == 3);
  float *p = malloc(P * sizeof(float)), *g = malloc(P * sizeof(float)), *pfin = malloc(P * sizeof(float));
  double *isum = calloc(P, sizeof(double)), *iabs = calloc(P, sizeof(double)), *iclip = calloc(P, sizeof(double));
  double *ilast = calloc(P, sizeof(double)), *t_l1 = calloc((size_t)lay->n, sizeof(double));
  double *t_sq = calloc((size_t)lay->n, sizeof(double));
  CHECK_OK(af_checkpoint_load(model, cfg, lay, p, SEED, NULL, 0));
  CHECK_OK(af_bert_set_params(&m, p));

  double worst_l1 = 0, worst_l2 = 0, worst_loss = 0;
  int interval = 0, steps_in = 0, clipped = 0;
  for (size_t s = 0; s < rec->n_steps; s++) {
    const int epoch = (int)(s / nb);
    const size_t k = s % nb;
    if (k == 0) CHECK_OK(af_batcher_begin(bt, epoch));
    af_batch b;
    CHECK_OK(af_batcher_get(bt, k, &b));
    const int depth = (int)rec->depth[s];
    be->zero(be, m.grads, P * sizeof(float));
    af_bert_input in = {b.ids, b.type_ids, b.mask, b.targets, b.B, b.T};
    CHECK_OK(af_bert_load_batch(&m, &in));
    float loss = NAN;
    CHECK_OK(af_bert_forward(&m, b.B, b.T, 0, depth, 1, 0, &loss));
    CHECK_OK(af_bert_backward(&m, b.B, b.T, depth, 0, 1.0f / (float)b.B));
    CHECK_OK(be->to_host(be, g, m.grads, P * sizeof(float)));
    double dl = fabs(loss - rec->loss[s]) / fabs(rec->loss[s]);
    if (!(dl <= worst_loss)) worst_loss = dl;
    /* the interval sums, before clipping; frozen layers have no gradient */
    const size_t tb = af_param_frozen_end(lay, depth);
    for (size_t j = tb; j < P; j++) {
      isum[j] += g[j];
      iabs[j] += fabs((double)g[j]);
      ilast[j] = g[j];
    }
    double gn = 0;
    CHECK_OK(af_optim_step(&m, oo, depth, (float)rec->lr[s], (long)s + 1, &gn));
    clipped += gn > oo->max_grad_norm;
    CHECK_OK(be->to_host(be, g, m.grads, P * sizeof(float)));  /* the clip scaled them in place */
    for (size_t j = tb; j < P; j++) iclip[j] += g[j];
    steps_in++;
    if ((size_t)rec->istep[interval] != s + 1) continue;

    /* ---- end of an interval: compare ---- */
    const double *got1 = rec->l1 + (size_t)interval * L, *got2 = rec->l2 + (size_t)interval * L;
    double want1[64], want2[64], c1[64], c2[64];
    tensor_norms(lay, isum, t_l1, t_sq);
    layer_scores(lay, t_l1, t_sq, L, depth, 0, 0, want1, want2);
    char label[128];
    snprintf(label, sizeof label, "%s interval %d (%d step%s, depth %d) l1", name, interval, steps_in,
             steps_in > 1 ? "s" : "", depth);
    af_test_close_d(label, got1, want1, (size_t)L, 1e-300, RTOL);
    snprintf(label, sizeof label, "%s interval %d (%d step%s, depth %d) l2", name, interval, steps_in,
             steps_in > 1 ? "s" : "", depth);
    af_test_close_d(label, got2, want2, (size_t)L, 1e-300, RTOL);
    for (int l = 0; l < L; l++) {
      if (l >= depth) CHECK(want1[l] > 0 && want2[l] > 0);  /* a trainable layer has a gradient */
      else CHECK(got1[l] == 0 && got2[l] == 0);           /* a frozen one is recorded as 0 */
    }
    double r1 = max_rel(got1, want1, L, depth), r2 = max_rel(got2, want2, L, depth);
    if (!(r1 <= worst_l1)) worst_l1 = r1;
    if (!(r2 <= worst_l2)) worst_l2 = r2;
    /* the controls */
    double miss[NCTL];
    layer_scores(lay, t_l1, t_sq, L, depth, 0, 1, c1, c2);
    miss[0] = max_rel(got1, c1, L, depth);
    layer_scores(lay, t_l1, t_sq, L, depth, 1, 0, c1, c2);
    miss[1] = max_rel(got1, c1, L, depth);
    tensor_norms(lay, iabs, t_l1, t_sq);
    layer_scores(lay, t_l1, t_sq, L, depth, 0, 0, c1, c2);
    miss[2] = steps_in > 1 ? max_rel(got1, c1, L, depth) : INFINITY;  /* the same thing for one step */
    tensor_norms(lay, iclip, t_l1, t_sq);
    layer_scores(lay, t_l1, t_sq, L, depth, 0, 0, c1, c2);
    miss[3] = max_rel(got1, c1, L, depth);
    tensor_norms(lay, ilast, t_l1, t_sq);
    layer_scores(lay, t_l1, t_sq, L, depth, 0, 0, c1, c2);
    miss[4] = steps_in > 1 ? max_rel(got1, c1, L, depth) : INFINITY;
    for (int c = 0; c < NCTL; c++) {
      if (miss[c] < ctl_min[c]) ctl_min[c] = miss[c];
      if (!(miss[c] > CONTROL_MIN))
        fprintf(stderr, "  %s: control '%s' matches interval %d (%.3g)\n", name, ctl_name[c], interval, miss[c]);
      CHECK(miss[c] > CONTROL_MIN);
    }
    memset(isum, 0, P * sizeof(double));
    memset(iabs, 0, P * sizeof(double));
    memset(iclip, 0, P * sizeof(double));
    memset(ilast, 0, P * sizeof(double));
    steps_in = 0;
    if (++interval == (int)rec->n_iv) break;
  }
  CHECK(interval == (int)rec->n_iv);
  printf("%s: replayed %zu steps, loss vs recorded max rel %.3g; clipping active at %d of %zu steps\n", name,
         rec->n_steps, worst_loss, clipped, rec->n_steps);
  CHECK(worst_loss <= 1e-6);
  CHECK(clipped == (int)rec->n_steps);  /* else the post-clip control proves nothing */
  printf("%s: %d intervals, scores vs recomputed: l1 max rel %.3g, l2 max rel %.3g (tolerance %g)\n", name, interval,
         worst_l1, worst_l2, RTOL);
  for (int c = 0; c < NCTL; c++)
    if (isfinite(ctl_min[c])) printf("%s: control %-38s misses by >= %.3g\n", name, ctl_name[c], ctl_min[c]);

  /* the replay ended where the run did: the run's last checkpoint holds its final parameters */
  CHECK_OK(af_bert_get_params(&m, p));
  CHECK_OK(af_train_ckpt_params(ckpt, pfin, P));
  char label[128];
  snprintf(label, sizeof label, "%s final parameters, replay vs run", name);
  af_test_close(label, p, pfin, P, 1e-7, 1e-5);
  free(p);
  free(g);
  free(pfin);
  free(isum);
  free(iabs);
  free(iclip);
  free(ilast);
  free(t_l1);
  free(t_sq);
done:
  af_batcher_free(bt);
  af_bert_free(&m);
  af_backend_close(be);
  af_task_free(task);
  af_tokenizer_free(tok);
}

static void opts_for(af_train_opts *o, const char *model, const char *data, const char *out, const char *ckpt,
                     af_policy *pol, int epochs) {
  af_test_tiny_train_opts(o, model, data, out, pol);  /* one thread, quiet */
  o->batch = BATCH;  /* what the replay below uses */
  o->max_len = MAX_LEN;
  o->checkpoint_dir = ckpt;
  o->epochs = epochs;
  o->seed = SEED;
  o->optim.lr = 1e-2f;
  o->optim.clip = AF_CLIP_GLOBAL;
  o->optim.max_grad_norm = MAX_NORM;
}

int main(void) {
  char model[4200], data[4200], out[4300], ckpt[4400], path[4400];
  snprintf(model, sizeof model, "%s/tests/fixtures/bert_tiny/cls", af_test_source_dir());
  const char *tmp = af_test_tmpdir();
  snprintf(data, sizeof data, "%s/task", tmp);
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
  if (system(cmd) != 0) return 1;
  af_test_write_you_split(data, "train", N_TRAIN, 11, 4, 7);
  af_test_write_you_split(data, "dev", 16, 12, 4, 7);

  /* the fixture must be dropout-free, or a step's gradient depends on the dropout masks */
  af_config cfg;
  snprintf(path, sizeof path, "%s/config.json", model);
  CHECK_OK(af_config_load(path, &cfg));
  if (af_test_failures) return af_test_done("test_interval_scores");
  const float pcls = cfg.classifier_dropout >= 0 ? cfg.classifier_dropout : cfg.hidden_dropout_prob;
  if (cfg.hidden_dropout_prob != 0 || cfg.attention_probs_dropout_prob != 0 || pcls != 0) {
    fprintf(stderr, "the fixture has dropout (%g, %g, %g): this test needs a dropout-free model\n",
            cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob, pcls);
    return 1;
  }
  const int L = cfg.num_hidden_layers;
  CHECK(L == 3);
  af_train_summary sum;
  af_train_opts o;
  recorded rec;
  double ctl[NCTL], ctl_all[NCTL];
  for (int c = 0; c < NCTL; c++) ctl_all[c] = INFINITY;

  /* ---- A: one step per interval, no freezing ---- */
  af_policy *none = NULL;
  CHECK_OK(af_policy_none(&none));
  snprintf(out, sizeof out, "%s/a.h5", tmp);
  snprintf(ckpt, sizeof ckpt, "%s/a.ckpt", tmp);
  opts_for(&o, model, data, out, ckpt, none, 1);
  o.interval_steps = 1;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.steps == 3);
  if (read_recorded(out, L, &rec)) {
    CHECK(rec.n_steps == 3 && rec.n_iv == 3);
    for (size_t k = 0; k < rec.n_iv; k++) CHECK((size_t)rec.istep[k] == k + 1);
    af_optim_opts oo;
    af_train_optim(&o, &oo);
    replay("A", model, data, ckpt, &cfg, &oo, &rec, ctl);
    for (int c = 0; c < NCTL; c++) ctl_all[c] = ctl[c] < ctl_all[c] ? ctl[c] : ctl_all[c];
  }
  recorded_free(&rec);

  /* ---- B: 4 intervals over 6 steps, one layer frozen at the second decision ---- */
  af_policy *pol = NULL;
  CHECK_OK(af_policy_custom("scripted", script, NULL, NULL, &pol));
  snprintf(out, sizeof out, "%s/b.h5", tmp);
  snprintf(ckpt, sizeof ckpt, "%s/b.ckpt", tmp);
  opts_for(&o, model, data, out, ckpt, pol, 2);
  o.intervals = 4;
  CHECK_OK(af_train(&o, &sum));
  CHECK(!strcmp(sum.status, "complete") && sum.steps == 6 && sum.final_depth == 1);
  if (read_recorded(out, L, &rec)) {
    /* the algorithm fixes: N decisions, the last at the end of the run, intervals as equal
     * as the step count allows (lengths floor(T/N) or ceil(T/N): 1 or 2 here), at least one
     * multi-step interval. Which of the unequal intervals is the short one is not fixed. */
    CHECK(rec.n_steps == 6 && rec.n_iv == 4);
    int multi = 0;
    printf("B: boundaries after steps");
    for (size_t k = 0; k < rec.n_iv; k++) {
      long len = (long)rec.istep[k] - (k ? (long)rec.istep[k - 1] : 0);
      CHECK(len == 1 || len == 2);
      multi += len == 2;
      printf(" %g", rec.istep[k]);
    }
    printf("\n");
    CHECK(multi == 2);
    /* the scripted freeze takes effect on the step after decision FREEZE_AT */
    for (size_t s = 0; s < rec.n_steps; s++) CHECK((int)rec.depth[s] == (s >= (size_t)rec.istep[FREEZE_AT]));
    af_optim_opts oo;
    af_train_optim(&o, &oo);
    replay("B", model, data, ckpt, &cfg, &oo, &rec, ctl);
    for (int c = 0; c < NCTL; c++) ctl_all[c] = ctl[c] < ctl_all[c] ? ctl[c] : ctl_all[c];
  }
  recorded_free(&rec);
  for (int c = 0; c < NCTL; c++) CHECK(isfinite(ctl_all[c]));  /* every control was exercised */

  af_policy_free(none);
  af_policy_free(pol);
  return af_test_done("test_interval_scores");
}
