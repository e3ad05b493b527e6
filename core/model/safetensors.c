/* safetensors reader (mmap + full header validation) and writer (atomic, 8-byte aligned
 * header). See safetensors.h. All validation happens in parse_image, which both the file
 * reader and the fuzz target call, so the fuzzer exercises exactly what users run. */
#include "core/model/safetensors.h"
#include "core/base/half.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

struct af_st {
  char *name;
  const uint8_t *image;  /* the whole file */
  size_t len;
  void *map;             /* non-NULL when we own an mmap of image */
  size_t map_len;
  af_st_tensor *t;       /* [n], sorted by data offset */
  int n;
  struct st_name { const char *name; int i; } *by_name;  /* [n] sorted by name, for af_st_find */
  char **meta;           /* [2*nmeta] key, value */
  int nmeta;
};

static const struct { const char *name; size_t size; } dtypes[AF_ST_DTYPE_COUNT] = {
    [AF_ST_F32] = {"F32", 4},   [AF_ST_F16] = {"F16", 2},   [AF_ST_BF16] = {"BF16", 2},
    [AF_ST_F64] = {"F64", 8},   [AF_ST_I64] = {"I64", 8},   [AF_ST_I32] = {"I32", 4},
    [AF_ST_I16] = {"I16", 2},   [AF_ST_I8] = {"I8", 1},     [AF_ST_U64] = {"U64", 8},
    [AF_ST_U32] = {"U32", 4},   [AF_ST_U16] = {"U16", 2},   [AF_ST_U8] = {"U8", 1},
    [AF_ST_BOOL] = {"BOOL", 1}, [AF_ST_F8_E4M3] = {"F8_E4M3", 1}, [AF_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *af_st_dtype_name(af_st_dtype d) {
  return (unsigned)d < AF_ST_DTYPE_COUNT ? dtypes[d].name : "?";
}
size_t af_st_dtype_size(af_st_dtype d) { return (unsigned)d < AF_ST_DTYPE_COUNT ? dtypes[d].size : 0; }
/* "F32", "BF16", ... -> the dtype; -1 when unknown. */
static int dtype_parse(const char *s) {
  for (int i = 0; i < AF_ST_DTYPE_COUNT; i++)
    if (!strcmp(s, dtypes[i].name)) return i;
  return -1;
}


/* ---- reading ---- */

void af_st_close(af_st *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
  for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
  free(st->meta);
  free(st->t);
  free(st->by_name);
  free(st->name);
  if (st->map) munmap(st->map, st->map_len);
  free(st);
}

int af_st_count(const af_st *st) { return st ? st->n : 0; }
const af_st_tensor *af_st_get(const af_st *st, int i) { return st && i >= 0 && i < st->n ? &st->t[i] : NULL; }
const char *af_st_name(const af_st *st) { return st ? st->name : ""; }

const af_st_tensor *af_st_find(const af_st *st, const char *name) {
  if (!st) return NULL;
  int lo = 0, hi = st->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(st->by_name[mid].name, name);
    if (c == 0) return &st->t[st->by_name[mid].i];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

const char *af_st_metadata(const af_st *st, const char *key) {
  if (!st) return NULL;
  for (int i = 0; i < st->nmeta; i++)
    if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
  return NULL;
}

/* 2^53: every integer up to here is exact in the double cJSON stores. */
#define MAX_EXACT 9007199254740992.0

static int as_u64(const cJSON *v, uint64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= MAX_EXACT) || d != (double)(uint64_t)d) return 0;
  *out = (uint64_t)d;
  return 1;
}

static const char *kind(const cJSON *v) {
  if (!v) return "nothing";
  if (cJSON_IsObject(v)) return "an object";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  return "an invalid value";
}

static void shape_str(const af_st_tensor *t, char *buf, size_t cap) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, cap - o, "[");
  for (int d = 0; d < t->ndim && o < cap; d++)
    o += (size_t)snprintf(buf + o, cap - o, d ? ",%lld" : "%lld", (long long)t->shape[d]);
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

static int cmp_offset(const void *a, const void *b) {
  const af_st_tensor *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}
static int cmp_name(const void *a, const void *b) {
  return strcmp(((const struct st_name *)a)->name, ((const struct st_name *)b)->name);
}

/* Parse one tensor entry into t (name already set). */
static af_status parse_tensor(const char *file, const cJSON *e, af_st_tensor *t, uint64_t data_len) {
  const char *nm = t->name;
  if (!cJSON_IsObject(e))
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': expected an object, found %s", file, nm, kind(e));
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  if (!cJSON_IsString(dt))
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': 'dtype' must be a string, found %s", file, nm, kind(dt));
  int d = dtype_parse(dt->valuestring);
  if (d < 0)
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': unknown dtype '%.20s' (expected F32, F16, BF16, I64, ...)",
                   file, nm, dt->valuestring);
  t->dtype = (af_st_dtype)d;

  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
  if (!cJSON_IsArray(sh))
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': 'shape' must be an array, found %s", file, nm, kind(sh));
  int nd = cJSON_GetArraySize(sh);
  if (nd > AF_ST_MAX_DIMS)
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': shape has %d dimensions, at most %d supported", file, nm,
                   nd, AF_ST_MAX_DIMS);
  t->ndim = nd;
  uint64_t numel = 1;
  int d_i = 0;
  const cJSON *dim;
  cJSON_ArrayForEach(dim, sh) {
    uint64_t v;
    if (!as_u64(dim, &v)) {
      if (cJSON_IsNumber(dim))
        return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': shape[%d] must be a non-negative integer, found %g",
                       file, nm, d_i, dim->valuedouble);
      return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': shape[%d] must be a non-negative integer, found %s", file,
                     nm, d_i, kind(dim));
    }
    t->shape[d_i++] = (int64_t)v;
    /* An overflowing product cannot match any byte range inside the file. */
    if (v != 0 && numel > UINT64_MAX / v) numel = UINT64_MAX;
    else numel *= v;
  }
  uint64_t es = af_st_dtype_size(t->dtype);
  uint64_t nbytes = numel > UINT64_MAX / es ? UINT64_MAX : numel * es;

  const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  uint64_t b, en;
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !as_u64(cJSON_GetArrayItem(off, 0), &b) ||
      !as_u64(cJSON_GetArrayItem(off, 1), &en))
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': 'data_offsets' must be two non-negative integers [begin,end]",
                   file, nm);
  if (en < b)
    return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': data_offsets [%llu,%llu] end before they begin", file, nm,
                   (unsigned long long)b, (unsigned long long)en);
  if (en > data_len)
    return AF_FAIL(AF_ERR_FORMAT,
                   "%s: tensor '%.100s': data_offsets [%llu,%llu] extend past the end of the data (%llu bytes)", file,
                   nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)data_len);
  if (en - b != nbytes) {
    char s[160];
    shape_str(t, s, sizeof s);
    if (nbytes == UINT64_MAX)
      return AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s': shape %s is too large", file, nm, s);
    return AF_FAIL(AF_ERR_FORMAT,
                   "%s: tensor '%.100s': data_offsets [%llu,%llu] hold %llu bytes but dtype %s and shape %s need "
                   "%llu",
                   file, nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b),
                   af_st_dtype_name(t->dtype), s, (unsigned long long)nbytes);
  }
  t->numel = (size_t)numel;
  t->nbytes = (size_t)nbytes;
  t->begin = b;
  t->end = en;
  return AF_OK;
}

static af_status parse_metadata(const char *file, const cJSON *m, af_st *st) {
  if (!cJSON_IsObject(m))
    return AF_FAIL(AF_ERR_FORMAT, "%s: '__metadata__' must be an object of strings, found %s", file, kind(m));
  int n = cJSON_GetArraySize(m);
  AF_TRY(af_calloc((void **)&st->meta, (size_t)n * 2 + 1, sizeof(char *), "safetensors metadata"));
  const cJSON *e;
  cJSON_ArrayForEach(e, m) {
    if (!cJSON_IsString(e))
      return AF_FAIL(AF_ERR_FORMAT, "%s: '__metadata__' entry '%.100s' must be a string, found %s", file,
                     e->string ? e->string : "", kind(e));
    char *k = strdup(e->string ? e->string : ""), *v = strdup(e->valuestring);
    st->meta[2 * st->nmeta] = k;
    st->meta[2 * st->nmeta + 1] = v;
    st->nmeta++;
    if (!k || !v) return AF_FAIL(AF_ERR_NOMEM, "%s: out of memory reading metadata", file);
  }
  return AF_OK;
}

static af_status parse_image(af_st *st) {
  const char *file = st->name;
  const uint8_t *p = st->image;
  size_t len = st->len;
  if (len < 8)
    return AF_FAIL(AF_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors header (8-byte length + JSON)",
                   file, len);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
  if (hlen > AF_ST_MAX_HEADER)
    return AF_FAIL(AF_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit (not a safetensors file?)", file,
                   (unsigned long long)hlen, (unsigned long long)AF_ST_MAX_HEADER);
  if (hlen > len - 8)
    return AF_FAIL(AF_ERR_FORMAT,
                   "%s: header length %llu extends past the end of the file (%zu bytes): truncated or not safetensors",
                   file, (unsigned long long)hlen, len);
  const char *h = (const char *)p + 8;
  if (hlen < 2 || h[0] != '{')
    return AF_FAIL(AF_ERR_FORMAT, "%s: header does not start with a JSON object '{' (not a safetensors file?)", file);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)hlen, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = (at >= h && at <= h + hlen) ? (long)(at - h) : -1;
    return AF_FAIL(AF_ERR_FORMAT, "%s: header is not valid JSON (error near header byte %ld)", file, off);
  }
  af_status s = AF_OK;
  /* Only whitespace padding may follow the JSON object. */
  for (const char *q = end ? end : h + hlen; q < h + hlen; q++)
    if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
      s = AF_FAIL(AF_ERR_FORMAT, "%s: unexpected bytes after the JSON header (at header byte %ld)", file,
                  (long)(q - h));
      goto out;
    }
  if (!cJSON_IsObject(root)) {
    s = AF_FAIL(AF_ERR_FORMAT, "%s: header must be a JSON object, found %s", file, kind(root));
    goto out;
  }
  uint64_t data_len = (uint64_t)len - 8 - hlen;
  int n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, root) n += !(e->string && !strcmp(e->string, "__metadata__"));
  if ((s = af_calloc((void **)&st->t, (size_t)n, sizeof *st->t, "safetensors index")) != AF_OK) goto out;
  if ((s = af_calloc((void **)&st->by_name, (size_t)n, sizeof *st->by_name, "safetensors index")) != AF_OK) goto out;
  int seen_meta = 0;
  cJSON_ArrayForEach(e, root) {
    const char *key = e->string ? e->string : "";
    if (!strcmp(key, "__metadata__")) {
      if (seen_meta++) {
        s = AF_FAIL(AF_ERR_FORMAT, "%s: '__metadata__' appears twice", file);
        goto out;
      }
      if ((s = parse_metadata(file, e, st)) != AF_OK) goto out;
      continue;
    }
    af_st_tensor *t = &st->t[st->n];
    t->name = strdup(key);
    if (!t->name) {
      s = AF_FAIL(AF_ERR_NOMEM, "%s: out of memory reading the header", file);
      goto out;
    }
    st->n++;
    if ((s = parse_tensor(file, e, t, data_len)) != AF_OK) goto out;
  }
  /* File order, then the overlap check on neighbours. */
  qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_offset);
  for (int i = 1; i < st->n; i++) {
    const af_st_tensor *a = &st->t[i - 1], *b = &st->t[i];
    if (b->begin < a->end) {
      s = AF_FAIL(AF_ERR_FORMAT, "%s: tensors '%.100s' [%llu,%llu] and '%.100s' [%llu,%llu] overlap", file, a->name,
                  (unsigned long long)a->begin, (unsigned long long)a->end, b->name, (unsigned long long)b->begin,
                  (unsigned long long)b->end);
      goto out;
    }
  }
  for (int i = 0; i < st->n; i++) {
    st->t[i].data = p + 8 + hlen + st->t[i].begin;
    st->by_name[i].name = st->t[i].name;
    st->by_name[i].i = i;
  }
  qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_name);
  for (int i = 1; i < st->n; i++)
    if (!strcmp(st->by_name[i].name, st->by_name[i - 1].name)) {
      s = AF_FAIL(AF_ERR_FORMAT, "%s: tensor '%.100s' appears twice in the header", file, st->by_name[i].name);
      goto out;
    }
out:
  cJSON_Delete(root);
  return s;
}

af_status af_st_open_memory(const void *buf, size_t len, const char *name, af_st **out) {
  *out = NULL;
  af_st *st;
  AF_TRY(af_calloc((void **)&st, 1, sizeof *st, "safetensors handle"));
  st->name = strdup(name ? name : "safetensors");
  if (!st->name) {
    free(st);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory");
  }
  st->image = buf;
  st->len = len;
  af_status s = parse_image(st);
  if (s != AF_OK) {
    af_st_close(st);
    return s;
  }
  *out = st;
  return AF_OK;
}

af_status af_st_open(const char *path, af_st **out) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return AF_FAIL(AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return AF_FAIL(AF_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    close(fd);
    return AF_FAIL(AF_ERR_IO, "%s: not a regular file", path);
  }
  size_t len = (size_t)sb.st_size;
  void *map = NULL;
  if (len >= 8) {
    map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      close(fd);
      return AF_FAIL(AF_ERR_IO, "%s: cannot map %zu bytes: %s", path, len, strerror(e));
    }
  }
  close(fd);
  static const uint8_t empty[1];
  af_status s = af_st_open_memory(map ? map : empty, len, path, out);
  if (s != AF_OK) {
    if (map) munmap(map, len);
    return s;
  }
  (*out)->map = map;
  (*out)->map_len = len;
  return AF_OK;
}

af_status af_st_read_f32(const af_st *st, const af_st_tensor *t, float *dst) {
  const uint8_t *src = t->data;
  switch (t->dtype) {
  case AF_ST_F32:
    memcpy(dst, src, t->numel * 4);
    return AF_OK;
  case AF_ST_F16:
    for (size_t i = 0; i < t->numel; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      dst[i] = af_f16_to_f32(h);
    }
    return AF_OK;
  case AF_ST_BF16:
    for (size_t i = 0; i < t->numel; i++) {
      uint16_t h;
      memcpy(&h, src + 2 * i, 2);
      dst[i] = af_bf16_to_f32(h);
    }
    return AF_OK;
  default:
    return AF_FAIL(AF_ERR_UNSUPPORTED, "%s: tensor '%.100s' has dtype %s, expected F32, F16 or BF16",
                   af_st_name(st), t->name, af_st_dtype_name(t->dtype));
  }
}

/* ---- writing ---- */

static af_status write_all(FILE *f, const void *p, size_t n, const char *tmp) {
  if (n && fwrite(p, 1, n, f) != n) return AF_FAIL(AF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  return AF_OK;
}

static af_status write_tensor_data(FILE *f, const af_st_write_tensor *t, size_t numel, const char *tmp) {
  if (t->dtype == AF_ST_F32) return write_all(f, t->data, numel * 4, tmp);
  uint16_t buf[4096];
  for (size_t i = 0; i < numel;) {
    size_t k = numel - i < 4096 ? numel - i : 4096;
    for (size_t j = 0; j < k; j++)
      buf[j] = t->dtype == AF_ST_F16 ? af_f32_to_f16(t->data[i + j]) : af_f32_to_bf16(t->data[i + j]);
    AF_TRY(write_all(f, buf, k * 2, tmp));
    i += k;
  }
  return AF_OK;
}

static af_status build_header(const char *path, const af_st_write_tensor *ts, int n, const int *order,
                              const size_t *numel, const char *metadata_json, char **out) {
  *out = NULL;
  cJSON *root = cJSON_CreateObject();
  if (!root) return AF_FAIL(AF_ERR_NOMEM, "%s: out of memory building the header", path);
  af_status s = AF_OK;
  if (metadata_json) {
    cJSON *m = cJSON_Parse(metadata_json);
    int ok = cJSON_IsObject(m);
    const cJSON *e;
    if (ok) cJSON_ArrayForEach(e, m) ok &= cJSON_IsString(e);
    if (!ok) {
      cJSON_Delete(m);
      cJSON_Delete(root);
      return AF_FAIL(AF_ERR_ARG, "%s: metadata must be a JSON object of strings, got: %.80s", path, metadata_json);
    }
    cJSON_AddItemToObject(root, "__metadata__", m);
  }
  uint64_t off = 0;
  for (int k = 0; k < n && s == AF_OK; k++) {
    const af_st_write_tensor *t = &ts[order[k]];
    cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
    if (!e || !sh || !of) {
      cJSON_Delete(e);
      cJSON_Delete(sh);
      cJSON_Delete(of);
      s = AF_FAIL(AF_ERR_NOMEM, "%s: out of memory building the header", path);
      break;
    }
    cJSON_AddItemToObject(root, t->name, e);
    cJSON_AddStringToObject(e, "dtype", af_st_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
    cJSON_AddItemToObject(e, "shape", sh);
    uint64_t nb = (uint64_t)numel[order[k]] * af_st_dtype_size(t->dtype);
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nb)));
    cJSON_AddItemToObject(e, "data_offsets", of);
    off += nb;
  }
  if (s == AF_OK) {
    *out = cJSON_PrintUnformatted(root);
    if (!*out) s = AF_FAIL(AF_ERR_NOMEM, "%s: out of memory building the header", path);
  }
  cJSON_Delete(root);
  return s;
}

af_status af_st_write_file(const char *tmp, const af_st_write_tensor *ts, int n, const char *metadata_json) {
  const char *path = tmp;  /* the name errors give */
  if (n < 0 || (n > 0 && !ts)) return AF_FAIL(AF_ERR_ARG, "%s: bad tensor list (n=%d)", path, n);
  size_t *numel = NULL;
  int *order = NULL;
  char *header = NULL;
  FILE *f = NULL;
  af_status s = AF_OK;
  if ((s = af_calloc((void **)&numel, (size_t)n + 1, sizeof *numel, "safetensors writer")) != AF_OK) goto out;
  if ((s = af_calloc((void **)&order, (size_t)n + 1, sizeof *order, "safetensors writer")) != AF_OK) goto out;
  for (int i = 0; i < n; i++) {
    const af_st_write_tensor *t = &ts[i];
    if (!t->name || !strcmp(t->name, "__metadata__")) {
      s = AF_FAIL(AF_ERR_ARG, "%s: tensor %d has no usable name", path, i);
      goto out;
    }
    if (t->dtype != AF_ST_F32 && t->dtype != AF_ST_F16 && t->dtype != AF_ST_BF16) {
      s = AF_FAIL(AF_ERR_ARG, "%s: tensor '%s': can write F32, F16 or BF16, not %s", path, t->name,
                  af_st_dtype_name(t->dtype));
      goto out;
    }
    if (t->ndim < 0 || t->ndim > AF_ST_MAX_DIMS) {
      s = AF_FAIL(AF_ERR_ARG, "%s: tensor '%s': ndim %d out of range", path, t->name, t->ndim);
      goto out;
    }
    size_t ne = 1;
    for (int d = 0; d < t->ndim; d++) {
      if (t->shape[d] < 0) {
        s = AF_FAIL(AF_ERR_ARG, "%s: tensor '%s': negative dimension", path, t->name);
        goto out;
      }
      ne *= (size_t)t->shape[d];
    }
    if (ne && !t->data) {
      s = AF_FAIL(AF_ERR_ARG, "%s: tensor '%s': no data", path, t->name);
      goto out;
    }
    for (int j = 0; j < i; j++)
      if (!strcmp(ts[j].name, t->name)) {
        s = AF_FAIL(AF_ERR_ARG, "%s: tensor '%s' given twice", path, t->name);
        goto out;
      }
    numel[i] = ne;
  }
  /* Widest dtype first (stable), so every tensor starts at a multiple of its own size. */
  int k = 0;
  for (size_t w = 4; w >= 2; w /= 2)
    for (int i = 0; i < n; i++)
      if (af_st_dtype_size(ts[i].dtype) == w) order[k++] = i;
  if ((s = build_header(path, ts, n, order, numel, metadata_json, &header)) != AF_OK) goto out;

  size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
  f = fopen(tmp, "wb");
  if (!f) {
    s = AF_FAIL(AF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    goto out;
  }
  uint8_t lenb[8];
  for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  if ((s = write_all(f, lenb, 8, tmp)) != AF_OK) goto out;
  if ((s = write_all(f, header, hl, tmp)) != AF_OK) goto out;
  if ((s = write_all(f, "        ", padded - hl, tmp)) != AF_OK) goto out;
  for (int i = 0; i < n; i++)
    if ((s = write_tensor_data(f, &ts[order[i]], numel[order[i]], tmp)) != AF_OK) goto out;
  if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
    s = AF_FAIL(AF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    goto out;
  }
  int ce = fclose(f);
  f = NULL;
  if (ce != 0) {
    s = AF_FAIL(AF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    goto out;
  }
out:
  if (f) fclose(f);
  if (s != AF_OK) remove(tmp);
  free(header);
  free(order);
  free(numel);
  return s;
}

af_status af_st_write(const char *path, const af_st_write_tensor *ts, int n, const char *metadata_json) {
  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
    return AF_FAIL(AF_ERR_ARG, "%s: path too long", path);
  AF_TRY(af_st_write_file(tmp, ts, n, metadata_json));
  if (rename(tmp, path) != 0) {
    af_status s = AF_FAIL(AF_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    remove(tmp);
    return s;
  }
  return AF_OK;
}
