/* Loads a Hugging Face BERT checkpoint into the parameter arena and saves a fine-tuned one
 * back in the same layout (see checkpoint.h). Name matching is forgiving (prefix, legacy
 * gamma/beta), shape matching is not: a config that disagrees with its weights is an error
 * that names the tensor, because silently training a mis-shaped model wastes hours. */
#include "core/model/checkpoint.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/model/safetensors.h"
#include "kernels/ops.h"

#define PATH_CAP 4096

/* ---- deterministic init ---- */

void af_init_normal(float *dst, size_t n, float std, uint64_t seed, uint64_t stream) {
  const double two_pi = 6.283185307179586476925286766559;
  uint64_t key = af_rng_mix(seed, stream);
  for (size_t j = 0; 2 * j < n; j++) {
    uint64_t a = af_rng_mix(key, 2 * j), b = af_rng_mix(key, 2 * j + 1);
    double u1 = (double)((a >> 11) + 1) * 0x1p-53;  /* (0, 1]: log never sees 0 */
    double u2 = (double)(b >> 11) * 0x1p-53;
    double r = sqrt(-2.0 * log(u1));
    dst[2 * j] = (float)(std * r * cos(two_pi * u2));
    if (2 * j + 1 < n) dst[2 * j + 1] = (float)(std * r * sin(two_pi * u2));
  }
}

/* FNV-1a of a tensor name: the init stream, so one tensor's values do not depend on which
 * other tensors were missing. */
static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* ---- model directory ---- */

af_status af_model_dir_check(const char *dir) {
  int derr = af_dir_errno(dir);
  if (derr == ENOTDIR)
    return AF_FAIL(AF_ERR_IO, "%s: not a directory (expected a model directory with config.json, vocab.txt and "
                   "model.safetensors)", dir);
  if (derr)
    return AF_FAIL(AF_ERR_IO, "%s: %s (expected a model directory with config.json, vocab.txt and model.safetensors)",
                   dir, strerror(derr));
  static const char *need[] = {"config.json", "vocab.txt", "model.safetensors"};
  for (int i = 0; i < 3; i++) {
    char p[PATH_CAP];
    snprintf(p, sizeof p, "%s/%s", dir, need[i]);
    if (access(p, R_OK) != 0) {
      int e = errno;
      if (e == ENOENT)
        return AF_FAIL(AF_ERR_IO, "%s: missing (a model directory needs config.json, vocab.txt and model.safetensors)",
                       p);
      return AF_FAIL(AF_ERR_IO, "%s: %s", p, strerror(e));
    }
  }
  return AF_OK;
}

/* ---- loading ---- */

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
  size_t o = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < ndim && o < cap; d++) o += (size_t)snprintf(buf + o, cap - o, d ? ",%lld" : "%lld", (long long)shape[d]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

static void layout_shape(const af_param_info *p, int64_t *shape) {
  shape[0] = p->shape[0];
  shape[1] = p->shape[1];
}

static int shape_matches(const af_st_tensor *t, const af_param_info *p) {
  if (t->ndim != p->ndim) return 0;
  for (int d = 0; d < p->ndim; d++)
    if (t->shape[d] != p->shape[d]) return 0;
  return 1;
}

/* The file's tensor for layout name: as is, with "bert.", and LayerNorm gamma/beta. */
static const af_st_tensor *resolve(const af_st *st, const char *name, char *found, size_t cap) {
  char alt[2][128];
  int nalt = 0;
  snprintf(alt[nalt++], sizeof alt[0], "%s", name);
  size_t n = strlen(name);
  const char *legacy = NULL;
  if (n > 16 && !strcmp(name + n - 16, "LayerNorm.weight")) legacy = "LayerNorm.gamma";
  if (n > 14 && !strcmp(name + n - 14, "LayerNorm.bias")) legacy = "LayerNorm.beta";
  if (legacy) {
    size_t stem = n - (legacy[10] == 'g' ? 16 : 14);
    snprintf(alt[nalt++], sizeof alt[0], "%.*s%s", (int)stem, name, legacy);
  }
  for (int i = 0; i < nalt; i++)
    for (int pre = 0; pre < 2; pre++) {
      char full[272];
      snprintf(full, sizeof full, "%s%s", pre ? "bert." : "", alt[i]);
      const af_st_tensor *t = af_st_find(st, full);
      if (t) {
        snprintf(found, cap, "%s", full);
        return t;
      }
    }
  return NULL;
}

/* Number of encoder layers the file holds (max index + 1), from "[bert.]encoder.layer.N.". */
static int file_layers(const af_st *st) {
  int L = 0;
  for (int i = 0; i < af_st_count(st); i++) {
    const char *nm = af_st_get(st, i)->name;
    if (!strncmp(nm, "bert.", 5)) nm += 5;
    if (strncmp(nm, "encoder.layer.", 14)) continue;
    char *end;
    long l = strtol(nm + 14, &end, 10);
    if (end != nm + 14 && *end == '.' && l >= 0 && l < 100000 && l + 1 > L) L = (int)l + 1;
  }
  return L;
}

typedef struct {
  char *buf;
  size_t cap, len;
} strbuf;

static void sb_add(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf *b, const char *fmt, ...) {
  if (!b->buf || b->len + 1 >= b->cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n > 0) b->len = b->len + (size_t)n < b->cap ? b->len + (size_t)n : b->cap - 1;
}

static af_status load_from(af_st *st, const char *stpath, const char *cfgpath, const af_config *cfg,
                           const af_param_layout *lay, float *params, uint64_t init_seed, strbuf *rep) {
  const int L = lay->L;
  int fl = file_layers(st);
  if (fl > 0 && fl != L)
    return AF_FAIL(AF_ERR_FORMAT,
                   "%s and %s disagree: config.json has num_hidden_layers=%d, model.safetensors has %d encoder layers",
                   cfgpath, stpath, L, fl);

  const af_st_tensor **src = calloc((size_t)lay->n + 1, sizeof *src);
  if (!src) return AF_FAIL(AF_ERR_NOMEM, "out of memory loading %s", stpath);
  af_status s = AF_OK;
  int nmissing = 0;
  char missing[512] = "";
  size_t mlen = 0;
  int cls_ok = 1;
  char cls_why[640] = "";
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *p = &lay->t[i];
    char found[272];
    const af_st_tensor *t = resolve(st, p->name, found, sizeof found);
    int is_head = p->group == AF_GROUP_POOLER(L) || p->group == AF_GROUP_CLASSIFIER(L);
    if (t && !shape_matches(t, p)) {
      char want[64], got[160];
      int64_t ws[2];
      layout_shape(p, ws);
      fmt_shape(want, sizeof want, p->ndim, ws);
      fmt_shape(got, sizeof got, t->ndim, t->shape);
      if (p->group == AF_GROUP_CLASSIFIER(L)) {
        if (cls_ok)
          snprintf(cls_why, sizeof cls_why, "checkpoint's %s is %s, %d labels need %s", found, got, p->shape[0], want);
        cls_ok = 0;
        continue;
      }
      s = AF_FAIL(AF_ERR_FORMAT, "%s and %s disagree: tensor '%s' has shape %s in model.safetensors, config.json implies %s",
                  cfgpath, stpath, found, got, want);
      goto out;
    }
    if (t && t->dtype != AF_ST_F32 && t->dtype != AF_ST_F16 && t->dtype != AF_ST_BF16) {
      s = AF_FAIL(AF_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", stpath, found,
                  af_st_dtype_name(t->dtype));
      goto out;
    }
    if (!t) {
      if (p->group == AF_GROUP_CLASSIFIER(L)) {
        if (cls_ok) snprintf(cls_why, sizeof cls_why, "not in checkpoint");
        cls_ok = 0;
      } else if (!is_head) {
        if (nmissing < 5 && mlen < sizeof missing)
          mlen += (size_t)snprintf(missing + mlen, sizeof missing - mlen, "%s%s", nmissing ? ", " : "", p->name);
        nmissing++;
      }
      continue;
    }
    src[i] = t;
  }
  if (nmissing) {
    s = AF_FAIL(AF_ERR_FORMAT, "%s: missing %d tensor%s that %s requires: %s%s", stpath, nmissing,
                nmissing == 1 ? "" : "s", cfgpath, missing, nmissing > 5 ? ", ..." : "");
    goto out;
  }
  /* The classifier is one unit: half of one is as good as none. */
  if (!cls_ok)
    for (int h = AF_HP_CLS_W; h <= AF_HP_CLS_B; h++) src[af_param_head(L, h)] = NULL;

  int loaded = 0, converted = 0;
  char inits[256] = "";
  size_t ilen = 0;
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *p = &lay->t[i];
    if (src[i]) {
      loaded++;
      converted += src[i]->dtype != AF_ST_F32;
      if (!params) continue;
      float *dst = params + p->offset;
      if ((s = af_st_read_f32(st, src[i], dst)) != AF_OK) goto out;
      for (size_t k = 0; k < p->numel; k++)
        if (!isfinite(dst[k])) {
          s = AF_FAIL(AF_ERR_NUMERIC, "%s: tensor '%s' holds %s at index %zu", stpath, src[i]->name,
                      isnan(dst[k]) ? "NaN" : "Inf", k);
          goto out;
        }
      continue;
    }
    if (p->group != AF_GROUP_CLASSIFIER(L) && ilen < sizeof inits)
      ilen += (size_t)snprintf(inits + ilen, sizeof inits - ilen, "%s%s", ilen ? ", " : "", p->name);
    if (!params) continue;
    if (p->decay) af_init_normal(params + p->offset, p->numel, cfg->initializer_range, init_seed, name_hash(p->name));
    else if (strstr(p->name, "LayerNorm.weight")) for (size_t k = 0; k < p->numel; k++) params[p->offset + k] = 1.0f;
    else memset(params + p->offset, 0, p->numel * sizeof(float));
  }
  sb_add(rep, "%s %d tensors from %s", params ? "loaded" : "checked", loaded, stpath);
  if (converted) sb_add(rep, " (%d converted from F16/BF16)", converted);
  /* Validate-only callers (params == NULL) initialise nothing: say what a load would do. */
  const char *verb = params ? "initialised" : "would initialise";
  if (ilen) sb_add(rep, "; %s %s (not in checkpoint)", verb, inits);
  if (!cls_ok)
    sb_add(rep, "; %s classifier for %d labels (%s)", verb, lay->t[af_param_head(L, AF_HP_CLS_W)].shape[0], cls_why);
  if (ilen || !cls_ok) {
    sb_add(rep, " with normal(0, %g) weights and zero biases", (double)cfg->initializer_range);
    if (params) sb_add(rep, ", seed %llu", (unsigned long long)init_seed);
  }
out:
  free(src);
  return s;
}

af_status af_checkpoint_load(const char *model_dir, const af_config *cfg, const af_param_layout *lay, float *params,
                             uint64_t init_seed, char *report, size_t report_cap) {
  strbuf rep = {report, report_cap, 0};
  if (report && report_cap) report[0] = 0;
  if (lay->L != cfg->num_hidden_layers)
    return AF_FAIL(AF_ERR_ARG, "parameter layout has %d layers, config %d", lay->L, cfg->num_hidden_layers);
  char stpath[PATH_CAP], cfgpath[PATH_CAP];
  snprintf(stpath, sizeof stpath, "%s/model.safetensors", model_dir);
  snprintf(cfgpath, sizeof cfgpath, "%s/config.json", model_dir);
  af_st *st = NULL;
  AF_TRY(af_st_open(stpath, &st));
  af_status s = load_from(st, stpath, cfgpath, cfg, lay, params, init_seed, &rep);
  af_st_close(st);
  return s;
}

/* ---- saving ---- */

/* Copy src to dst through dst.tmp; a no-op when both name the same file. */
static af_status copy_file(const char *src, const char *dst) {
  struct stat a, b;
  if (stat(src, &a) == 0 && stat(dst, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return AF_OK;
  char tmp[PATH_CAP];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= sizeof tmp) return AF_FAIL(AF_ERR_ARG, "%s: path too long", dst);
  FILE *in = fopen(src, "rb");
  if (!in) return AF_FAIL(AF_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
  FILE *out = fopen(tmp, "wb");
  if (!out) {
    int e = errno;
    fclose(in);
    return AF_FAIL(AF_ERR_IO, "%s: cannot create: %s", tmp, strerror(e));
  }
  char buf[1 << 16];
  size_t n;
  int bad = 0;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0)
    if (fwrite(buf, 1, n, out) != n) {
      bad = 1;
      break;
    }
  bad |= ferror(in);
  fclose(in);
  bad |= fclose(out) != 0;
  if (bad || rename(tmp, dst) != 0) {
    int e = errno;
    remove(tmp);
    return AF_FAIL(AF_ERR_IO, "%s: copying from %s failed: %s", dst, src, strerror(e));
  }
  return AF_OK;
}

af_status af_checkpoint_save(const char *out_dir, const char *vocab_src_dir, const af_config *cfg,
                             const af_param_layout *lay, const float *params) {
  if (lay->L != cfg->num_hidden_layers)
    return AF_FAIL(AF_ERR_ARG, "parameter layout has %d layers, config %d", lay->L, cfg->num_hidden_layers);
  AF_TRY(af_mkdirs(out_dir));
  char path[PATH_CAP];

  af_st_write_tensor *ts = calloc((size_t)lay->n + 1, sizeof *ts);
  char (*names)[112] = calloc((size_t)lay->n + 1, sizeof *names);
  if (!ts || !names) {
    free(ts);
    free(names);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory saving %s", out_dir);
  }
  for (int i = 0; i < lay->n; i++) {
    const af_param_info *p = &lay->t[i];
    snprintf(names[i], sizeof names[i], "%s%s", p->group == AF_GROUP_CLASSIFIER(lay->L) ? "" : "bert.", p->name);
    ts[i].name = names[i];
    ts[i].dtype = AF_ST_F32;
    ts[i].ndim = p->ndim;
    layout_shape(p, ts[i].shape);
    ts[i].data = params + p->offset;
  }
  snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
  /* transformers refuses a safetensors file whose metadata lacks format=pt. */
  af_status s = af_st_write(path, ts, lay->n, "{\"format\":\"pt\"}");
  free(ts);
  free(names);
  AF_TRY(s);

  af_config c = *cfg;
  c.num_labels = lay->t[af_param_head(lay->L, AF_HP_CLS_W)].shape[0];
  snprintf(path, sizeof path, "%s/config.json", out_dir);
  AF_TRY(af_config_save(path, &c));

  if (!vocab_src_dir) return AF_OK;
  static const char *files[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"};
  for (int i = 0; i < 3; i++) {
    char src[PATH_CAP];
    snprintf(src, sizeof src, "%s/%s", vocab_src_dir, files[i]);
    snprintf(path, sizeof path, "%s/%s", out_dir, files[i]);
    if (i > 0 && access(src, R_OK) != 0) continue;  /* optional */
    AF_TRY(copy_file(src, path));
  }
  return AF_OK;
}
