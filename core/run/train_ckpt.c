/* Checkpoint files and results reopening for resumable runs; see train_ckpt.h for the
 * layout. Counters travel as safetensors __metadata__ strings (the format allows only
 * string values). The writers here run on the checkpoint writer's thread: they read only
 * the snapshot they are given and report through the thread's own last-error line. */
#include "core/run/train_ckpt.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* "%.17g,%.17g,..." of the previous interval's scores */
static void prev_text(const af_train_state *st, char *out, size_t cap) {
  size_t used = 0;
  out[0] = 0;
  for (int l = 0; st->prev_scores && l < st->L && used + 26 < cap; l++)
    used += (size_t)snprintf(out + used, cap - used, "%s%.17g", l ? "," : "", st->prev_scores[l]);
}

static void prefix_name(int depth, char *out, size_t cap) { snprintf(out, cap, "prefix-%d.safetensors", depth); }

af_status af_train_ckpt_write_prefix(const char *dir, const af_ckpt_snapshot *s) {
  const size_t F = s->F;
  char meta[512], name[64], path[4200];
  snprintf(meta, sizeof meta,
           "{\"format\":\"autofreeze-run-checkpoint-prefix-1\",\"depth\":\"%d\",\"prefix_end\":\"%zu\","
           "\"prefix_id\":\"%llu\",\"total\":\"%zu\"}",
           s->st.depth, F, (unsigned long long)s->prefix_id, s->P);
  af_st_write_tensor t[3] = {
      {"params", AF_ST_F32, 1, {(int64_t)F}, s->prefix},
      {"adam_m", AF_ST_F32, 1, {(int64_t)F}, s->prefix + F},
      {"adam_v", AF_ST_F32, 1, {(int64_t)F}, s->prefix + 2 * F},
  };
  prefix_name(s->st.depth, name, sizeof name);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return af_st_write(path, t, 3, meta);
}

af_status af_train_ckpt_write_last_tmp(const char *dir, const af_ckpt_snapshot *s) {
  const af_train_state *st = &s->st;
  char prev[512 * 26], mdir[8192], rcfg[4096], pfile[64] = "";
  prev_text(st, prev, sizeof prev);
  json_str(mdir, sizeof mdir, s->model_dir);
  json_str(rcfg, sizeof rcfg, st->run_config ? st->run_config : "");
  if (s->F > 0) prefix_name(st->depth, pfile, sizeof pfile);
  const char *lab = st->labels ? st->labels : "";
  const size_t lcap = 6 * strlen(lab) + 8, mcap = sizeof prev + sizeof mdir + sizeof rcfg + lcap + 2048;
  char *meta = malloc(mcap), *lesc = malloc(lcap);
  if (!meta || !lesc) {
    free(meta);
    free(lesc);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory for checkpoint metadata");
  }
  json_str(lesc, lcap, lab);
  snprintf(meta, mcap,
           "{\"format\":\"autofreeze-run-checkpoint-1\",\"model_dir\":\"%s\",\"num_labels\":\"%d\",\"step\":\"%ld\","
           "\"epoch\":\"%d\",\"batch_in_epoch\":\"%zu\",\"depth\":\"%d\",\"examples\":\"%ld\",\"L\":\"%d\","
           "\"intervals_done\":\"%d\",\"prev_scores\":\"%s\",\"has_prev\":\"%d\",\"have_best\":\"%d\","
           "\"best\":\"%.17g\",\"best_step\":\"%ld\",\"best_train_time\":\"%.17g\",\"train_time\":\"%.17g\","
           "\"seed\":\"%llu\",\"total_steps\":\"%ld\",\"last_eval_step\":\"%ld\",\"labels\":\"%s\","
           "\"run_config\":\"%s\",\"prefix_file\":\"%s\",\"prefix_end\":\"%zu\",\"prefix_id\":\"%llu\","
           "\"interval_loss_sum\":\"%.17g\",\"interval_loss_steps\":\"%ld\",\"loss_min\":\"%.17g\","
           "\"wait_end\":\"%ld\"}",
           mdir, s->num_labels, st->step, st->epoch, st->batch_in_epoch, st->depth, st->examples, st->L,
           st->intervals_done, prev, st->prev_scores != NULL, st->have_best, st->best, st->best_step,
           st->best_train_time, st->train_time, (unsigned long long)st->seed, st->total_steps, st->last_eval_step,
           lesc, rcfg, pfile, s->F, (unsigned long long)(s->F > 0 ? s->prefix_id : 0), st->loss_sum,
           st->loss_steps, st->loss_min, st->wait_end);
  free(lesc);
  const size_t T = s->P - s->F;
  af_st_write_tensor t[4] = {
      {"params", AF_ST_F32, 1, {(int64_t)T}, s->tail},
      {"adam_m", AF_ST_F32, 1, {(int64_t)T}, s->tail + T},
      {"adam_v", AF_ST_F32, 1, {(int64_t)T}, s->tail + 2 * T},
      {"interval_grad_sum", AF_ST_F32, 1, {(int64_t)s->E}, s->acc},
  };
  char path[4200];
  snprintf(path, sizeof path, "%s/last.safetensors.tmp", dir);
  af_status r = af_st_write_file(path, t, 4, meta);
  free(meta);
  return r;
}

af_status af_train_ckpt_commit(const char *dir) {
  char tmp[4200], path[4200];
  snprintf(tmp, sizeof tmp, "%s/last.safetensors.tmp", dir);
  snprintf(path, sizeof path, "%s/last.safetensors", dir);
  if (rename(tmp, path) != 0) return AF_FAIL(AF_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
  /* the rename on disk before older prefix files go (af_train_ckpt_remove_prefixes) */
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  return AF_OK;
}

void af_train_ckpt_remove_prefixes(const char *dir, int keep, int L) {
  for (int d = 1; d <= L; d++) {
    if (d == keep) continue;
    char name[64], path[4300];
    prefix_name(d, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s.tmp", dir, name);
    unlink(path);
  }
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

/* The prefix file last.safetensors names, opened and checked against it: *F floats of
 * params/adam_m/adam_v are there, the rest in last.safetensors. A checkpoint in one file
 * (depth 0, or written before the split) names none: *F = 0, *pre = NULL. */
static af_status open_prefix(const char *dir, af_st *last, size_t P, size_t *F, af_st **pre, uint64_t *id) {
  *F = 0;
  *pre = NULL;
  *id = 0;
  const char *name = af_st_metadata(last, "prefix_file");
  if (!name || !name[0]) return AF_OK;
  long long end = 0, pid = 0;
  AF_TRY(meta_long(last, "prefix_end", &end));
  AF_TRY(meta_long(last, "prefix_id", &pid));
  if (strchr(name, '/') || strncmp(name, "prefix-", 7) || end <= 0 || (size_t)end >= P)
    return AF_FAIL(AF_ERR_FORMAT, "%s: bad prefix_file '%s' or prefix_end %lld (parameters: %zu floats)",
                   af_st_name(last), name, end, P);
  char path[4400];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (access(path, R_OK) != 0)
    return AF_FAIL(AF_ERR_IO, "%s: the frozen layers' part of the checkpoint is missing (%s names it)", path,
                   af_st_name(last));
  AF_TRY(af_st_open(path, pre));
  const char *fmt = af_st_metadata(*pre, "format"), *pid_s = af_st_metadata(*pre, "prefix_id");
  char want[32];
  snprintf(want, sizeof want, "%llu", (unsigned long long)pid);
  if (!fmt || strcmp(fmt, "autofreeze-run-checkpoint-prefix-1") || !pid_s || strcmp(pid_s, want)) {
    af_st_close(*pre);
    *pre = NULL;
    return AF_FAIL(AF_ERR_FORMAT, "%s: not the frozen layers' part that %s names (prefix_id %s, expected %s)", path,
                   af_st_name(last), pid_s ? pid_s : "absent", want);
  }
  *F = (size_t)end;
  *id = (uint64_t)pid;
  return AF_OK;
}

/* Tensor `name` ([P] floats) from its two parts, or from last alone. */
static af_status read_whole(af_st *last, af_st *pre, size_t F, const char *name, size_t P, float *dst) {
  if (pre) AF_TRY(read_tensor(pre, name, F, dst));
  return read_tensor(last, name, P - F, dst + F);
}

af_status af_train_ckpt_load(const char *dir, af_bert *m, af_train_state *out) {
  af_st *st = NULL, *pre = NULL;
  AF_TRY(open_ckpt(dir, &st));
  const size_t P = m->lay.total, E = m->enc_end - m->enc_begin;
  size_t F = 0;
  float *buf = NULL;
  af_status s = open_prefix(dir, st, P, &F, &pre, &out->prefix_id);
  if (s == AF_OK) s = af_malloc((void **)&buf, (P > E ? P : E) * sizeof(float), "checkpoint");
  af_backend *be = m->be;
  if (s == AF_OK && (s = read_whole(st, pre, F, "params", P, buf)) == AF_OK)
    s = be->to_device(be, m->params, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_whole(st, pre, F, "adam_m", P, buf)) == AF_OK)
    s = be->to_device(be, m->m, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_whole(st, pre, F, "adam_v", P, buf)) == AF_OK)
    s = be->to_device(be, m->v, buf, P * sizeof(float));
  if (s == AF_OK && (s = read_tensor(st, "interval_grad_sum", E, buf)) == AF_OK)
    s = be->to_device(be, m->acc, buf, E * sizeof(float));
  free(buf);
  af_st_close(pre);
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
  out->has_loss = af_st_metadata(st, "interval_loss_sum") != NULL;  /* absent before --freeze-when-learned */
  if (out->has_loss) {
    GETD("interval_loss_sum", loss_sum);
    GETL("interval_loss_steps", loss_steps, long);
    GETD("loss_min", loss_min);
  }
  out->wait_end = -1;  /* absent before the guard shifted FreezeOut's clock: still waiting */
  if (af_st_metadata(st, "wait_end")) GETL("wait_end", wait_end, long);
#undef GETL
#undef GETD
  out->prefix_depth = F > 0 ? out->depth : -1;
  if (s == AF_OK && F > 0 && F != af_param_frozen_end(&m->lay, out->depth))
    s = AF_FAIL(AF_ERR_FORMAT, "%s/last.safetensors: prefix_end %zu is not the frozen prefix of depth %d (%zu floats)",
                dir, F, out->depth, af_param_frozen_end(&m->lay, out->depth));
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
  af_st *st = NULL, *pre = NULL;
  AF_TRY(open_ckpt(dir, &st));
  size_t F = 0;
  uint64_t id;
  af_status s = open_prefix(dir, st, total, &F, &pre, &id);
  if (s == AF_OK) s = read_whole(st, pre, F, "params", total, params);
  af_st_close(pre);
  af_st_close(st);
  return s;
}

/* ---- results reopening ---- */

af_status af_train_results_open(const char *path, int L, long resume_step, af_results **res) {
  if (resume_step < 0 || access(path, R_OK) != 0) return af_results_create(path, L, res);
  return af_results_open_append(path, L, resume_step, res);
}
