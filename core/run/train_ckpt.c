/* Checkpoints and results reopening for resumable runs; see train_ckpt.h. Counters travel
 * as safetensors __metadata__ strings (the format allows only string values). */
#include "core/run/train_ckpt.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/model/safetensors.h"

/* JSON string escaping for the few free-form values (paths). */
static void json_str(char *out, size_t cap, const char *s) {
  size_t j = 0;
  for (; *s && j + 7 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') { out[j++] = '\\'; out[j++] = (char)c; }
    else if (c < 0x20) j += (size_t)snprintf(out + j, cap - j, "\\u%04x", c);
    else out[j++] = (char)c;
  }
  out[j] = 0;
}

af_status af_train_ckpt_save(const char *dir, const af_bert *m, const af_train_state *st, const char *model_dir) {
  AF_TRY(af_mkdirs(dir));
  af_backend *be = m->be;
  const size_t P = m->lay.total, E = m->enc_end - m->enc_begin;
  float *buf = NULL;
  AF_TRY(af_malloc((void **)&buf, (3 * P + E) * sizeof(float), "checkpoint"));
  af_status s = be->to_host(be, buf, m->params, P * sizeof(float));
  if (s == AF_OK) s = be->to_host(be, buf + P, m->m, P * sizeof(float));
  if (s == AF_OK) s = be->to_host(be, buf + 2 * P, m->v, P * sizeof(float));
  if (s == AF_OK) s = be->to_host(be, buf + 3 * P, m->acc, E * sizeof(float));
  if (s != AF_OK) {
    free(buf);
    return s;
  }
  char prev[512 * 26] = "";
  size_t used = 0;
  for (int l = 0; st->prev_scores && l < st->L && used + 26 < sizeof prev; l++)
    used += (size_t)snprintf(prev + used, sizeof prev - used, "%s%.17g", l ? "," : "", st->prev_scores[l]);
  /* absolute, so that `autofreeze export` finds the base model from any working folder */
  char mdir[8192], *abs = realpath(model_dir, NULL);
  json_str(mdir, sizeof mdir, abs ? abs : model_dir);
  free(abs);
  const char *lab = st->labels ? st->labels : "";
  char rcfg[4096];
  json_str(rcfg, sizeof rcfg, st->run_config ? st->run_config : "");
  const size_t lcap = 6 * strlen(lab) + 8, mcap = sizeof prev + sizeof mdir + sizeof rcfg + lcap + 2048;
  char *meta = malloc(mcap), *lesc = malloc(lcap);
  if (!meta || !lesc) {
    free(meta);
    free(lesc);
    free(buf);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for checkpoint metadata");
  }
  json_str(lesc, lcap, lab);
  snprintf(meta, mcap,
           "{\"format\":\"autofreeze-run-checkpoint-1\",\"model_dir\":\"%s\",\"num_labels\":\"%d\",\"step\":\"%ld\","
           "\"epoch\":\"%d\",\"batch_in_epoch\":\"%zu\",\"depth\":\"%d\",\"examples\":\"%ld\",\"L\":\"%d\","
           "\"intervals_done\":\"%d\",\"prev_scores\":\"%s\",\"has_prev\":\"%d\",\"have_best\":\"%d\","
           "\"best\":\"%.17g\",\"best_step\":\"%ld\",\"best_train_time\":\"%.17g\",\"train_time\":\"%.17g\","
           "\"seed\":\"%llu\",\"total_steps\":\"%ld\",\"last_eval_step\":\"%ld\",\"labels\":\"%s\","
           "\"run_config\":\"%s\"}",
           mdir, m->num_labels, st->step, st->epoch, st->batch_in_epoch, st->depth, st->examples, st->L,
           st->intervals_done, prev, st->prev_scores != NULL, st->have_best, st->best, st->best_step,
           st->best_train_time, st->train_time, (unsigned long long)st->seed, st->total_steps, st->last_eval_step,
           lesc, rcfg);
  free(lesc);
  af_st_write_tensor t[4] = {
      {"params", AF_ST_F32, 1, {(int64_t)P}, buf},
      {"adam_m", AF_ST_F32, 1, {(int64_t)P}, buf + P},
      {"adam_v", AF_ST_F32, 1, {(int64_t)P}, buf + 2 * P},
      {"interval_grad_sum", AF_ST_F32, 1, {(int64_t)E}, buf + 3 * P},
  };
  char path[4096];
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  s = af_st_write(path, t, 4, meta);
  free(meta);
  free(buf);
  return s;
}

static af_status meta_long(const af_st *st, const char *key, long long *v) {
  const char *s = af_st_metadata(st, key);
  char *end;
  if (!s) return AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", af_st_name(st), key);
  errno = 0;
  *v = strtoll(s, &end, 10);
  if (errno || *end) return AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint metadata '%s' is not an integer: '%s'", af_st_name(st), key, s);
  return AF_OK;
}
static af_status meta_double(const af_st *st, const char *key, double *v) {
  const char *s = af_st_metadata(st, key);
  char *end;
  if (!s) return AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", af_st_name(st), key);
  *v = strtod(s, &end);
  if (*end) return AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint metadata '%s' is not a number: '%s'", af_st_name(st), key, s);
  return AF_OK;
}

static af_status open_ckpt(const char *dir, af_st **st) {
  char path[4096];
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  if (access(path, R_OK) != 0)
    return AF_FAIL(AF_ERR_IO, "%s: no run checkpoint (expected a run's checkpoint folder, OUT.h5.ckpt or --checkpoint-dir)", path);
  AF_TRY(af_st_open(path, st));
  const char *fmt = af_st_metadata(*st, "format");
  if (!fmt || strcmp(fmt, "autofreeze-run-checkpoint-1")) {
    af_st_close(*st);
    *st = NULL;
    return AF_FAIL(AF_ERR_FORMAT, "%s: not an autofreeze run checkpoint", path);
  }
  return AF_OK;
}

static af_status read_tensor(af_st *st, const char *name, size_t n, float *dst) {
  const af_st_tensor *t = af_st_find(st, name);
  if (!t || t->numel != n)
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%s' missing or of the wrong size (expected %zu floats)", af_st_name(st),
                   name, n);
  return af_st_read_f32(st, t, dst);
}

af_status af_train_ckpt_load(const char *dir, af_bert *m, af_train_state *out) {
  af_st *st = NULL;
  AF_TRY(open_ckpt(dir, &st));
  const size_t P = m->lay.total, E = m->enc_end - m->enc_begin;
  float *buf = NULL;
  af_status s = af_malloc((void **)&buf, (P > E ? P : E) * sizeof(float), "checkpoint");
  af_backend *be = m->be;
  if (s == AF_OK && (s = read_tensor(st, "params", P, buf)) == AF_OK) s = be->to_device(be, m->params, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_tensor(st, "adam_m", P, buf)) == AF_OK) s = be->to_device(be, m->m, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_tensor(st, "adam_v", P, buf)) == AF_OK) s = be->to_device(be, m->v, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_tensor(st, "interval_grad_sum", E, buf)) == AF_OK)
    s = be->to_device(be, m->acc, buf, E * sizeof(float));
  free(buf);
  long long v;
  double d;
#define GETL(k, field, type) if (s == AF_OK && (s = meta_long(st, k, &v)) == AF_OK) out->field = (type)v
#define GETD(k, field) if (s == AF_OK && (s = meta_double(st, k, &d)) == AF_OK) out->field = d
  GETL("step", step, long);
  GETL("epoch", epoch, int);
  GETL("batch_in_epoch", batch_in_epoch, size_t);
  GETL("depth", depth, int);
  GETL("examples", examples, long);
  GETL("L", L, int);
  GETL("intervals_done", intervals_done, int);
  GETL("has_prev", has_prev, int);
  GETL("have_best", have_best, int);
  GETD("best", best);
  GETL("best_step", best_step, long);
  GETD("best_train_time", best_train_time);
  GETD("train_time", train_time);
  GETL("seed", seed, uint64_t);
  GETL("total_steps", total_steps, long);
  GETL("last_eval_step", last_eval_step, long);
#undef GETL
#undef GETD
  const char *rc = af_st_metadata(st, "run_config");
  snprintf(out->run_config_in, sizeof out->run_config_in, "%s", rc ? rc : "");
  if (s == AF_OK && out->has_prev) {
    const char *p = af_st_metadata(st, "prev_scores");
    for (int l = 0; l < out->L && l < 512; l++) {
      char *end;
      out->prev_scores_out[l] = strtod(p, &end);
      if (end == p) {
        s = AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint prev_scores holds fewer than %d values", dir, out->L);
        break;
      }
      p = *end == ',' ? end + 1 : end;
    }
  }
  af_st_close(st);
  return s;
}

af_status af_train_ckpt_info(const char *dir, char *model_dir, size_t cap, int *num_labels, char *labels,
                             size_t labels_cap) {
  af_st *st = NULL;
  AF_TRY(open_ckpt(dir, &st));
  const char *md = af_st_metadata(st, "model_dir");
  long long nl = 0;
  af_status s = meta_long(st, "num_labels", &nl);
  if (s == AF_OK && !md) s = AF_FAIL(AF_ERR_FORMAT, "%s: checkpoint metadata lacks 'model_dir'", dir);
  if (s == AF_OK) {
    snprintf(model_dir, cap, "%s", md);
    *num_labels = (int)nl;
    const char *lab = af_st_metadata(st, "labels");  /* absent in checkpoints before it existed */
    snprintf(labels, labels_cap, "%s", lab ? lab : "");
  }
  af_st_close(st);
  return s;
}

af_status af_train_ckpt_params(const char *dir, float *params, size_t total) {
  af_st *st = NULL;
  AF_TRY(open_ckpt(dir, &st));
  af_status s = read_tensor(st, "params", total, params);
  af_st_close(st);
  return s;
}

/* ---- results reopening ---- */

af_status af_train_results_open(const char *path, int L, long resume_step, af_results **res) {
  if (resume_step < 0 || access(path, R_OK) != 0) return af_results_create(path, L, res);
  return af_results_open_append(path, L, resume_step, res);
}
