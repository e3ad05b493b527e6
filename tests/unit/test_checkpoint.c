/* Checkpoint load/save: a synthetic tiny checkpoint with "bert." names and legacy
 * gamma/beta loads; missing tensors are listed; a config that disagrees with the weights
 * is refused; save -> load is exact; the real MiniLM checkpoint (when AF_MODEL_DIR has it)
 * loads with values equal to the file's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/model/checkpoint.h"
#include "core/model/safetensors.h"
#include "tests/testutil.h"

static void write_text(const char *dir, const char *name, const char *text) {
  char p[4400];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  if (!f) { perror(p); af_test_failures++; return; }
  fputs(text, f);
  fclose(f);
}

static const char *mkdir_tmp(const char *name) {
  static char bufs[16][4300];
  static int k;
  char *p = bufs[k++ % 16];
  snprintf(p, 4300, "%s/%s", af_test_tmpdir(), name);
  mkdir(p, 0777);
  return p;
}

static float value_at(size_t i) { return (float)sin(0.37 * (double)i + 0.1); }

/* Write a synthetic checkpoint for cfg into dir. Names use the "bert." prefix and legacy
 * gamma/beta; skip: tensors (layout names) to leave out, NULL-terminated; f16: store
 * layer 0's query weight as F16. Pooler and classifier are left out when with_head is 0. */
static void write_checkpoint(const char *dir, const af_config *cfg, const af_param_layout *lay, const float *vals,
                             const char **skip, int with_head, int f16) {
  af_config c = *cfg;
  c.num_labels = 0;
  char p[4400];
  snprintf(p, sizeof p, "%s/config.json", dir);
  CHECK_OK(af_config_save(p, &c));
  write_text(dir, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
  af_st_write_tensor *ts = calloc((size_t)lay->n + 1, sizeof *ts);
  char (*names)[128] = calloc((size_t)lay->n + 1, sizeof *names);
  int n = 0;
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *pi = &lay->t[i];
    int is_head = pi->group >= AF_GROUP_POOLER(lay->L);
    if (is_head && !with_head) continue;
    int skipped = 0;
    for (const char **s = skip; s && *s; s++) skipped |= !strcmp(*s, pi->name);
    if (skipped) continue;
    char nm[112];
    snprintf(nm, sizeof nm, "%s", pi->name);
    char *ln = strstr(nm, "LayerNorm.");
    if (ln) strcpy(ln + 10, strstr(pi->name, "LayerNorm.weight") ? "gamma" : "beta");
    snprintf(names[n], sizeof names[n], "%s%s", pi->group == AF_GROUP_CLASSIFIER(lay->L) ? "" : "bert.", nm);
    ts[n].name = names[n];
    ts[n].dtype = f16 && !strcmp(pi->name, "encoder.layer.0.attention.self.query.weight") ? AF_ST_F16 : AF_ST_F32;
    ts[n].ndim = pi->ndim;
    ts[n].shape[0] = pi->shape[0];
    ts[n].shape[1] = pi->shape[1];
    ts[n].data = vals + pi->offset;
    n++;
  }
  /* Extra tensors a pretraining checkpoint carries: ignored. */
  static float extra[5] = {1, 2, 3, 4, 5};
  ts[n++] = (af_st_write_tensor){"cls.predictions.bias", AF_ST_F32, 1, {5}, extra};
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  CHECK_OK(af_st_write(p, ts, n, "{\"format\":\"pt\"}"));
  free(ts);
  free(names);
}

static double stddev(const float *x, size_t n) {
  double s = 0, s2 = 0;
  for (size_t i = 0; i < n; i++) { s += x[i]; s2 += (double)x[i] * x[i]; }
  return sqrt(s2 / n - (s / n) * (s / n));
}

static void test_synthetic(void) {
  af_config cfg;
  CHECK_OK(af_config_named("tiny", &cfg));
  af_param_layout lay;
  CHECK_OK(af_param_layout_build(&cfg, 3, &lay));
  const int L = lay.L;
  float *vals = malloc(lay.total * sizeof(float)), *got = malloc(lay.total * sizeof(float)),
        *again = malloc(lay.total * sizeof(float));
  for (size_t i = 0; i < lay.total; i++) vals[i] = value_at(i);

  /* 1. prefix + gamma/beta + an F16 tensor, no pooler/classifier: loads, head initialised. */
  const char *dir = mkdir_tmp("synthetic");
  write_checkpoint(dir, &cfg, &lay, vals, NULL, 0, 1);
  CHECK_OK(af_model_dir_check(dir));
  char report[1024];
  memset(got, 0xff, lay.total * sizeof(float));
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, got, 7, report, sizeof report));
  printf("  report: %s\n", report);
  CHECK(strstr(report, "pooler.dense.weight") && strstr(report, "classifier") && strstr(report, "initialised"));
  CHECK(strstr(report, "1 converted from F16"));
  size_t head = lay.group_begin[L + 1];
  int qw = af_param_layer(0, AF_LP_QW);
  size_t q0 = lay.t[qw].offset, q1 = q0 + lay.t[qw].numel;
  af_test_close("synthetic body (F32 part, exact)", got, vals, q0, 0, 0);
  af_test_close("synthetic body (F16 tensor)", got + q0, vals + q0, q1 - q0, 0, 1.0 / 1024);
  af_test_close("synthetic body (after F16 tensor)", got + q1, vals + q1, head - q1, 0, 0);
  const af_param_info *pw = &lay.t[af_param_head(L, AF_HP_POOL_W)], *pb = &lay.t[af_param_head(L, AF_HP_POOL_B)];
  const af_param_info *cw = &lay.t[af_param_head(L, AF_HP_CLS_W)], *cb = &lay.t[af_param_head(L, AF_HP_CLS_B)];
  double sd = stddev(got + pw->offset, pw->numel);
  printf("  initialised pooler weight std %.4f (want ~0.02)\n", sd);
  CHECK(sd > 0.017 && sd < 0.023);
  for (size_t k = 0; k < pb->numel; k++) CHECK(got[pb->offset + k] == 0.0f);
  for (size_t k = 0; k < cb->numel; k++) CHECK(got[cb->offset + k] == 0.0f);
  CHECK(stddev(got + cw->offset, cw->numel) > 0.005);
  /* Deterministic from the seed; another seed gives other values. */
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, again, 7, NULL, 0));
  CHECK(memcmp(got, again, lay.total * sizeof(float)) == 0);
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, again, 8, NULL, 0));
  CHECK(memcmp(got + pw->offset, again + pw->offset, pw->numel * sizeof(float)) != 0);
  /* Validate-only mode. */
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, NULL, 0, report, sizeof report));

  /* 2. missing tensors are listed, first few and the count. */
  const char *skip[] = {"embeddings.LayerNorm.bias", "encoder.layer.1.attention.self.key.weight",
                        "encoder.layer.1.output.dense.bias", "encoder.layer.0.intermediate.dense.weight",
                        "encoder.layer.1.output.LayerNorm.weight", "encoder.layer.0.attention.output.dense.bias",
                        "encoder.layer.1.intermediate.dense.bias", NULL};
  dir = mkdir_tmp("missing");
  write_checkpoint(dir, &cfg, &lay, vals, skip, 1, 0);
  af_status s = af_checkpoint_load(dir, &cfg, &lay, got, 0, NULL, 0);
  printf("  missing: %s\n", af_last_error());
  CHECK(s == AF_ERR_FORMAT && strstr(af_last_error(), "missing 7 tensors") &&
        strstr(af_last_error(), "embeddings.LayerNorm.bias") && strstr(af_last_error(), "model.safetensors") &&
        strstr(af_last_error(), ", ..."));

  /* 3. config and weights disagree: a shape, and the layer count. */
  dir = mkdir_tmp("full");
  write_checkpoint(dir, &cfg, &lay, vals, NULL, 1, 0);
  af_config wide = cfg;
  wide.intermediate_size = 128;
  af_param_layout lw;
  CHECK_OK(af_param_layout_build(&wide, 3, &lw));
  s = af_checkpoint_load(dir, &wide, &lw, NULL, 0, NULL, 0);
  printf("  disagree: %s\n", af_last_error());
  CHECK(s == AF_ERR_FORMAT && strstr(af_last_error(), "disagree") &&
        strstr(af_last_error(), "encoder.layer.0.intermediate.dense.weight") && strstr(af_last_error(), "[64,32]") &&
        strstr(af_last_error(), "[128,32]"));
  af_param_layout_free(&lw);
  af_config deep = cfg;
  deep.num_hidden_layers = 3;
  CHECK_OK(af_param_layout_build(&deep, 3, &lw));
  s = af_checkpoint_load(dir, &deep, &lw, NULL, 0, NULL, 0);
  printf("  disagree: %s\n", af_last_error());
  CHECK(s == AF_ERR_FORMAT && strstr(af_last_error(), "num_hidden_layers=3") && strstr(af_last_error(), "2 encoder"));
  af_param_layout_free(&lw);
  /* A full checkpoint with the classifier loads exactly; with another label count the
   * classifier is re-initialised and the report says why. */
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, got, 0, report, sizeof report));
  af_test_close("full checkpoint incl. head", got, vals, lay.total, 0, 0);
  CHECK(strstr(report, "initialised") == NULL);
  CHECK_OK(af_param_layout_build(&cfg, 2, &lw));
  float *two = malloc(lw.total * sizeof(float));
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lw, two, 0, report, sizeof report));
  printf("  report: %s\n", report);
  CHECK(strstr(report, "classifier for 2 labels") && strstr(report, "[3,32]"));
  af_test_close("body with 2-label head", two, vals, lw.group_begin[L + 2], 0, 0);
  free(two);
  af_param_layout_free(&lw);

  /* 4. save -> load round trip, equal bit for bit, in HF names. */
  for (size_t i = 0; i < lay.total; i++) vals[i] = (float)cos(1.3 * (double)i) * 0.5f;
  const char *out = mkdir_tmp("saved/nested");  /* parent does not exist: mkdir_tmp fails, save creates it */
  CHECK_OK(af_checkpoint_save(out, dir, &cfg, &lay, vals));
  CHECK_OK(af_model_dir_check(out));
  af_config back;
  char p[4400];
  snprintf(p, sizeof p, "%s/config.json", out);
  CHECK_OK(af_config_load(p, &back));
  CHECK(back.num_labels == 3 && back.hidden_size == cfg.hidden_size);
  CHECK_OK(af_checkpoint_load(out, &back, &lay, got, 0, report, sizeof report));
  af_test_close("save -> load round trip", got, vals, lay.total, 0, 0);
  snprintf(p, sizeof p, "%s/model.safetensors", out);
  af_st *st = NULL;
  CHECK_OK(af_st_open(p, &st));
  CHECK(af_st_find(st, "bert.encoder.layer.1.output.LayerNorm.weight") && af_st_find(st, "bert.pooler.dense.bias") &&
        af_st_find(st, "classifier.weight") && af_st_find(st, "bert.embeddings.word_embeddings.weight"));
  CHECK(af_st_find(st, "bert.classifier.weight") == NULL && af_st_count(st) == lay.n);
  CHECK(af_st_metadata(st, "format") && !strcmp(af_st_metadata(st, "format"), "pt"));
  af_st_close(st);
  /* Saving over the source directory keeps vocab.txt intact. */
  CHECK_OK(af_checkpoint_save(out, out, &cfg, &lay, vals));
  snprintf(p, sizeof p, "%s/vocab.txt", out);
  FILE *f = fopen(p, "r");
  char line[64] = "";
  CHECK(f && fgets(line, sizeof line, f) && !strcmp(line, "[PAD]\n"));
  if (f) fclose(f);

  /* 5. NaN in the weights. */
  vals[5] = NAN;
  dir = mkdir_tmp("nan");
  write_checkpoint(dir, &cfg, &lay, vals, NULL, 1, 0);
  s = af_checkpoint_load(dir, &cfg, &lay, got, 0, NULL, 0);
  CHECK(s == AF_ERR_NUMERIC && strstr(af_last_error(), "NaN"));

  /* 6. model directory checks. */
  dir = mkdir_tmp("novocab");
  write_checkpoint(dir, &cfg, &lay, vals, NULL, 1, 0);
  snprintf(p, sizeof p, "%s/vocab.txt", dir);
  remove(p);
  CHECK(af_model_dir_check(dir) == AF_ERR_IO && strstr(af_last_error(), "vocab.txt"));
  snprintf(p, sizeof p, "%s/not-here", af_test_tmpdir());
  CHECK(af_model_dir_check(p) == AF_ERR_IO && strstr(af_last_error(), p));

  free(vals);
  free(got);
  free(again);
  af_param_layout_free(&lay);
}

static void test_init_normal(void) {
  enum { N = 100001 };
  float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
  af_init_normal(a, N, 1.0f, 123, 5);
  af_init_normal(b, N, 1.0f, 123, 5);
  CHECK(memcmp(a, b, N * sizeof(float)) == 0);
  double m = 0;
  for (int i = 0; i < N; i++) m += a[i];
  m /= N;
  double sd = stddev(a, N);
  printf("  af_init_normal: mean %.4f std %.4f\n", m, sd);
  CHECK(fabs(m) < 0.02 && fabs(sd - 1.0) < 0.02);
  af_init_normal(b, N, 1.0f, 123, 6);
  CHECK(memcmp(a, b, N * sizeof(float)) != 0);
  free(a);
  free(b);
}

static void test_real_model(void) {
  const char *dir = af_test_model_dir();
  if (!dir) {
    printf("SKIPPED part: real model (AF_MODEL_DIR has no model.safetensors)\n");
    return;
  }
  CHECK_OK(af_model_dir_check(dir));
  char p[4400];
  snprintf(p, sizeof p, "%s/config.json", dir);
  af_config cfg;
  CHECK_OK(af_config_load(p, &cfg));
  CHECK(cfg.num_hidden_layers == 6 && cfg.hidden_size == 384);
  af_param_layout lay;
  CHECK_OK(af_param_layout_build(&cfg, 2, &lay));
  float *w = malloc(lay.total * sizeof(float));
  char report[1024];
  CHECK_OK(af_checkpoint_load(dir, &cfg, &lay, w, 1, report, sizeof report));
  printf("  real model: %s\n", report);
  CHECK(strstr(report, "classifier for 2 labels"));
  CHECK(strstr(report, "pooler") == NULL);  /* MiniLM has its pooler */
  /* Spot-check against the file, tensor by tensor. */
  snprintf(p, sizeof p, "%s/model.safetensors", dir);
  af_st *st = NULL;
  CHECK_OK(af_st_open(p, &st));
  const char *names[] = {"embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight",
                         "encoder.layer.0.attention.self.query.weight", "encoder.layer.3.attention.self.value.bias",
                         "encoder.layer.5.output.LayerNorm.bias", "encoder.layer.5.intermediate.dense.weight",
                         "pooler.dense.weight"};
  for (size_t i = 0; st && i < sizeof names / sizeof names[0]; i++) {
    const af_st_tensor *t = af_st_find(st, names[i]);
    int k = af_param_find(&lay, names[i]);
    CHECK(t && k >= 0 && t->dtype == AF_ST_F32 && t->numel == lay.t[k].numel);
    if (!t || k < 0 || t->numel != lay.t[k].numel) continue;
    float *ref = malloc(t->numel * sizeof(float));
    CHECK_OK(af_st_read_f32(st, t, ref));
    af_test_close(names[i], w + lay.t[k].offset, ref, t->numel, 0, 0);
    free(ref);
  }
  /* Anchors read independently of our reader (Python struct on the published file). */
  static const struct { const char *name; size_t i; float v; } anchors[] = {
      {"embeddings.LayerNorm.weight", 0, 0.5989283323287964f},
      {"embeddings.word_embeddings.weight", 101 * 384 + 7, 0.004580335225909948f},
      {"encoder.layer.5.output.LayerNorm.bias", 383, 0.06612399220466614f},
  };
  for (size_t i = 0; i < sizeof anchors / sizeof anchors[0]; i++) {
    int k = af_param_find(&lay, anchors[i].name);
    CHECK(k >= 0 && w[lay.t[k].offset + anchors[i].i] == anchors[i].v);
  }
  /* position_ids (I64) is in the file and ignored. */
  CHECK(st && af_st_find(st, "embeddings.position_ids") && af_st_find(st, "embeddings.position_ids")->dtype == AF_ST_I64);
  af_st_close(st);
  free(w);
  af_param_layout_free(&lay);
}

int main(void) {
  af_set_quiet(1);
  test_init_normal();
  test_synthetic();
  test_real_model();
  return af_test_done("test_checkpoint");
}
