/* Reads and writes the Hugging Face config.json of a BERT model (see config.h). Every
 * error names the file and the key, says what was expected and what was found, so a
 * user with a hand-edited or foreign config sees at once which line to fix. */
#include "core/model/config.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading ---- */

/* A short description of a JSON value for "found ..." messages. */
static void describe(const cJSON *v, char *buf, size_t cap) {
  if (!v) snprintf(buf, cap, "nothing (key missing)");
  else if (cJSON_IsNull(v)) snprintf(buf, cap, "null");
  else if (cJSON_IsBool(v)) snprintf(buf, cap, "%s", cJSON_IsTrue(v) ? "true" : "false");
  else if (cJSON_IsNumber(v)) snprintf(buf, cap, "%.15g", v->valuedouble);
  else if (cJSON_IsString(v)) snprintf(buf, cap, "the string \"%.40s%s\"", v->valuestring,
                                       strlen(v->valuestring) > 40 ? "..." : "");
  else if (cJSON_IsArray(v)) snprintf(buf, cap, "an array");
  else if (cJSON_IsObject(v)) snprintf(buf, cap, "an object");
  else snprintf(buf, cap, "an invalid value");
}

static af_status bad_key(const char *path, const char *key, const char *expected, const cJSON *v) {
  char found[96];
  describe(v, found, sizeof found);
  return AF_FAIL(AF_ERR_FORMAT, "%s: key '%s': expected %s, found %s", path, key, expected, found);
}

/* An integer in [lo, INT32_MAX]. missing: -1 = required, else the default. */
static af_status get_int(const cJSON *root, const char *path, const char *key, int lo, int required,
                         int dflt, int *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  const char *expected = lo > 0 ? "a positive integer" : "a non-negative integer";
  if (!v) {
    if (required) return bad_key(path, key, expected, v);
    *out = dflt;
    return AF_OK;
  }
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
      v->valuedouble > 2147483647.0)
    return bad_key(path, key, expected, v);
  *out = (int)v->valuedouble;
  return AF_OK;
}

/* A float in [lo, hi); NaN and out-of-range values are rejected. */
static af_status get_float(const cJSON *root, const char *path, const char *key, double lo, double hi,
                           const char *expected, float dflt, float *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
  if (!v) {
    *out = dflt;
    return AF_OK;
  }
  if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble < hi))
    return bad_key(path, key, expected, v);
  *out = (float)v->valuedouble;
  return AF_OK;
}

static af_status parse(const cJSON *root, const char *path, af_config *cfg) {
  if (!cJSON_IsObject(root))
    return AF_FAIL(AF_ERR_FORMAT, "%s: expected a JSON object at the top level", path);

  /* model_type first: a RoBERTa config would otherwise fail later with a confusing shape error. */
  const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  snprintf(cfg->model_type, sizeof cfg->model_type, "bert");
  if (mt && !cJSON_IsNull(mt)) {
    if (!cJSON_IsString(mt)) return bad_key(path, "model_type", "a string", mt);
    if (strcmp(mt->valuestring, "bert") != 0)
      return AF_FAIL(AF_ERR_UNSUPPORTED,
                     "%s: key 'model_type': '%.40s' is not supported (only 'bert': RoBERTa-style models "
                     "use different position ids, token types and weight names)",
                     path, mt->valuestring);
  }
  const cJSON *pe = cJSON_GetObjectItemCaseSensitive(root, "position_embedding_type");
  if (pe && !cJSON_IsNull(pe)) {
    if (!cJSON_IsString(pe)) return bad_key(path, "position_embedding_type", "a string", pe);
    if (strcmp(pe->valuestring, "absolute") != 0)
      return AF_FAIL(AF_ERR_UNSUPPORTED,
                     "%s: key 'position_embedding_type': '%.40s' is not supported (only 'absolute')", path,
                     pe->valuestring);
  }

  AF_TRY(get_int(root, path, "hidden_size", 1, 1, 0, &cfg->hidden_size));
  AF_TRY(get_int(root, path, "num_hidden_layers", 1, 1, 0, &cfg->num_hidden_layers));
  AF_TRY(get_int(root, path, "num_attention_heads", 1, 1, 0, &cfg->num_attention_heads));
  AF_TRY(get_int(root, path, "intermediate_size", 1, 1, 0, &cfg->intermediate_size));
  AF_TRY(get_int(root, path, "vocab_size", 1, 1, 0, &cfg->vocab_size));
  AF_TRY(get_int(root, path, "max_position_embeddings", 1, 1, 0, &cfg->max_position_embeddings));
  /* BertConfig defaults for the rest. */
  AF_TRY(get_int(root, path, "type_vocab_size", 1, 0, 2, &cfg->type_vocab_size));

  AF_TRY(get_float(root, path, "layer_norm_eps", 0, 1, "a number in (0, 1)", 1e-12f, &cfg->layer_norm_eps));
  if (!(cfg->layer_norm_eps > 0))
    return bad_key(path, "layer_norm_eps", "a number in (0, 1)",
                   cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps"));
  AF_TRY(get_float(root, path, "hidden_dropout_prob", 0, 1, "a probability in [0, 1)", 0.1f,
                   &cfg->hidden_dropout_prob));
  AF_TRY(get_float(root, path, "attention_probs_dropout_prob", 0, 1, "a probability in [0, 1)", 0.1f,
                   &cfg->attention_probs_dropout_prob));
  const cJSON *cd = cJSON_GetObjectItemCaseSensitive(root, "classifier_dropout");
  if (!cd || cJSON_IsNull(cd)) cfg->classifier_dropout = -1.0f;
  else AF_TRY(get_float(root, path, "classifier_dropout", 0, 1, "null or a probability in [0, 1)", -1.0f,
                        &cfg->classifier_dropout));
  AF_TRY(get_float(root, path, "initializer_range", 0, 10, "a non-negative number", 0.02f,
                   &cfg->initializer_range));

  const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
  cfg->hidden_act = AF_GELU_ERF;
  if (act) {
    if (!cJSON_IsString(act)) return bad_key(path, "hidden_act", "a string", act);
    const char *a = act->valuestring;
    if (!strcmp(a, "gelu")) cfg->hidden_act = AF_GELU_ERF;
    else if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh")) cfg->hidden_act = AF_GELU_TANH;
    else
      return AF_FAIL(AF_ERR_UNSUPPORTED,
                     "%s: key 'hidden_act': '%.40s' is not supported (expected gelu, gelu_new or "
                     "gelu_pytorch_tanh)",
                     path, a);
  }

  /* pad_token_id may be null in some exports; BERT's default is 0. */
  const cJSON *pad = cJSON_GetObjectItemCaseSensitive(root, "pad_token_id");
  cfg->pad_token_id = 0;
  if (pad && !cJSON_IsNull(pad)) AF_TRY(get_int(root, path, "pad_token_id", 0, 0, 0, &cfg->pad_token_id));

  /* id2label wins over num_labels, as in transformers' PretrainedConfig. */
  const cJSON *id2 = cJSON_GetObjectItemCaseSensitive(root, "id2label");
  const cJSON *nl = cJSON_GetObjectItemCaseSensitive(root, "num_labels");
  cfg->num_labels = 0;
  if (id2 && !cJSON_IsNull(id2)) {
    if (!cJSON_IsObject(id2)) return bad_key(path, "id2label", "an object", id2);
    cfg->num_labels = cJSON_GetArraySize(id2);
  } else if (nl && !cJSON_IsNull(nl)) {
    AF_TRY(get_int(root, path, "num_labels", 0, 0, 0, &cfg->num_labels));
  }
  return af_config_check(cfg, path);
}

af_status af_config_load(const char *path, af_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  FILE *f = fopen(path, "rb");
  if (!f) return AF_FAIL(AF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  char *text = NULL;
  size_t len = 0, cap = 0;
  af_status s = AF_OK;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      if (cap > (16u << 20)) {
        s = AF_FAIL(AF_ERR_FORMAT, "%s: larger than 16 MB, not a config.json", path);
        break;
      }
      char *t = realloc(text, cap);
      if (!t) {
        s = AF_FAIL(AF_ERR_NOMEM, "%s: out of memory reading the file", path);
        break;
      }
      text = t;
    }
    size_t got = fread(text + len, 1, cap - len - 1, f);
    len += got;
    if (got == 0) {
      if (ferror(f)) s = AF_FAIL(AF_ERR_IO, "%s: read error: %s", path, strerror(errno));
      break;
    }
  }
  fclose(f);
  if (s != AF_OK) {
    free(text);
    return s;
  }
  cJSON *root = cJSON_ParseWithLength(text ? text : "", len);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long off = (at && text && at >= text && at <= text + len) ? (long)(at - text) : -1;
    int line = 1;
    for (long i = 0; i < off; i++) line += text[i] == '\n';
    free(text);
    if (off >= 0) return AF_FAIL(AF_ERR_FORMAT, "%s:%d: not valid JSON (near byte %ld)", path, line, off);
    return AF_FAIL(AF_ERR_FORMAT, "%s: not valid JSON", path);
  }
  free(text);
  s = parse(root, path, cfg);
  cJSON_Delete(root);
  return s;
}

af_status af_config_check(const af_config *cfg, const char *path) {
  if (!path) path = "config";
  const struct { const char *key; int v; } sizes[] = {
      {"hidden_size", cfg->hidden_size},
      {"num_hidden_layers", cfg->num_hidden_layers},
      {"num_attention_heads", cfg->num_attention_heads},
      {"intermediate_size", cfg->intermediate_size},
      {"vocab_size", cfg->vocab_size},
      {"max_position_embeddings", cfg->max_position_embeddings},
      {"type_vocab_size", cfg->type_vocab_size},
  };
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    if (sizes[i].v <= 0)
      return AF_FAIL(AF_ERR_FORMAT, "%s: key '%s': expected a positive integer, found %d", path, sizes[i].key,
                     sizes[i].v);
  if (cfg->hidden_size % cfg->num_attention_heads != 0)
    return AF_FAIL(AF_ERR_FORMAT,
                   "%s: key 'num_attention_heads': hidden_size %d must be a multiple of num_attention_heads, "
                   "found %d",
                   path, cfg->hidden_size, cfg->num_attention_heads);
  /* Products that size the parameter arena must fit comfortably in size_t and int math. */
  if ((double)cfg->vocab_size * cfg->hidden_size > 4e9 || (double)cfg->intermediate_size * cfg->hidden_size > 4e9)
    return AF_FAIL(AF_ERR_FORMAT, "%s: sizes too large (vocab_size %d, intermediate_size %d, hidden_size %d)", path,
                   cfg->vocab_size, cfg->intermediate_size, cfg->hidden_size);
  if (!(cfg->layer_norm_eps > 0))
    return AF_FAIL(AF_ERR_FORMAT, "%s: key 'layer_norm_eps': expected a positive number, found %g", path,
                   (double)cfg->layer_norm_eps);
  if (!(cfg->hidden_dropout_prob >= 0 && cfg->hidden_dropout_prob < 1) ||
      !(cfg->attention_probs_dropout_prob >= 0 && cfg->attention_probs_dropout_prob < 1) ||
      !(cfg->classifier_dropout < 1))
    return AF_FAIL(AF_ERR_FORMAT, "%s: dropout probabilities must be in [0, 1)", path);
  if (cfg->num_labels < 0)
    return AF_FAIL(AF_ERR_FORMAT, "%s: key 'num_labels': expected a non-negative integer, found %d", path,
                   cfg->num_labels);
  return AF_OK;
}

/* ---- writing ---- */

/* The shortest decimal that reads back as the same float, so 0.1f is written "0.1"
 * and not 0.10000000149011612. */
static double short_float(float x) {
  char buf[32];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
    if (strtof(buf, NULL) == x) return strtod(buf, NULL);
  }
  return (double)x;
}

static int add_num(cJSON *o, const char *key, double v) { return cJSON_AddNumberToObject(o, key, v) != NULL; }

af_status af_config_save(const char *path, const af_config *cfg) {
  AF_TRY(af_config_check(cfg, path));
  cJSON *o = cJSON_CreateObject();
  if (!o) return AF_FAIL(AF_ERR_NOMEM, "%s: out of memory building JSON", path);
  int ok = 1;
  cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
  ok &= arch != NULL;
  if (arch)
    cJSON_AddItemToArray(arch, cJSON_CreateString(cfg->num_labels > 0 ? "BertForSequenceClassification"
                                                                       : "BertModel"));
  ok &= cJSON_AddStringToObject(o, "model_type", "bert") != NULL;
  ok &= add_num(o, "attention_probs_dropout_prob", short_float(cfg->attention_probs_dropout_prob));
  if (cfg->classifier_dropout < 0) ok &= cJSON_AddNullToObject(o, "classifier_dropout") != NULL;
  else ok &= add_num(o, "classifier_dropout", short_float(cfg->classifier_dropout));
  ok &= cJSON_AddStringToObject(o, "hidden_act", cfg->hidden_act == AF_GELU_TANH ? "gelu_new" : "gelu") != NULL;
  ok &= add_num(o, "hidden_dropout_prob", short_float(cfg->hidden_dropout_prob));
  ok &= add_num(o, "hidden_size", cfg->hidden_size);
  ok &= add_num(o, "initializer_range", short_float(cfg->initializer_range));
  ok &= add_num(o, "intermediate_size", cfg->intermediate_size);
  ok &= add_num(o, "layer_norm_eps", short_float(cfg->layer_norm_eps));
  ok &= add_num(o, "max_position_embeddings", cfg->max_position_embeddings);
  ok &= add_num(o, "num_attention_heads", cfg->num_attention_heads);
  ok &= add_num(o, "num_hidden_layers", cfg->num_hidden_layers);
  ok &= add_num(o, "pad_token_id", cfg->pad_token_id);
  ok &= cJSON_AddStringToObject(o, "position_embedding_type", "absolute") != NULL;
  ok &= add_num(o, "type_vocab_size", cfg->type_vocab_size);
  ok &= add_num(o, "vocab_size", cfg->vocab_size);
  ok &= cJSON_AddStringToObject(o, "torch_dtype", "float32") != NULL;
  if (cfg->num_labels > 0) {
    /* num_labels is written too (transformers checks it against id2label); label2id is
     * id2label's inverse. */
    ok &= add_num(o, "num_labels", cfg->num_labels);
    cJSON *id2 = cJSON_AddObjectToObject(o, "id2label"), *l2i = cJSON_AddObjectToObject(o, "label2id");
    ok &= id2 && l2i;
    for (int i = 0; ok && i < cfg->num_labels; i++) {
      char k[32], v[32];
      snprintf(k, sizeof k, "%d", i);
      snprintf(v, sizeof v, "LABEL_%d", i);
      const char *name = cfg->label_names && cfg->label_names[i] ? cfg->label_names[i] : v;
      ok &= cJSON_AddStringToObject(id2, k, name) != NULL;
      ok &= add_num(l2i, name, i);
    }
    if (cfg->num_labels == 1) ok &= cJSON_AddStringToObject(o, "problem_type", "regression") != NULL;
    else ok &= cJSON_AddStringToObject(o, "problem_type", "single_label_classification") != NULL;
  }
  char *text = ok ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  if (!text) return AF_FAIL(AF_ERR_NOMEM, "%s: out of memory building JSON", path);

  char tmp[4096];
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
    free(text);
    return AF_FAIL(AF_ERR_ARG, "%s: path too long", path);
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    free(text);
    return AF_FAIL(AF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
  }
  size_t n = strlen(text);
  int werr = fwrite(text, 1, n, f) != n || fputc('\n', f) == EOF;
  werr |= fclose(f) != 0;
  free(text);
  if (werr) {
    remove(tmp);
    return AF_FAIL(AF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return AF_FAIL(AF_ERR_IO, "%s: cannot rename from %s: %s", path, tmp, strerror(e));
  }
  return AF_OK;
}

/* ---- built-in shapes ---- */

af_status af_config_named(const char *name, af_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  int L, C, NH, I, V, P;
  if (!strcmp(name, "tiny")) { L = 2; C = 32; NH = 4; I = 64; V = 128; P = 64; }
  else if (!strcmp(name, "minilm-l6")) { L = 6; C = 384; NH = 12; I = 1536; V = 30522; P = 512; }
  else if (!strcmp(name, "bert-base")) { L = 12; C = 768; NH = 12; I = 3072; V = 30522; P = 512; }
  else return AF_FAIL(AF_ERR_ARG, "unknown model shape '%s' (expected tiny, minilm-l6 or bert-base)", name);
  cfg->hidden_size = C;
  cfg->num_hidden_layers = L;
  cfg->num_attention_heads = NH;
  cfg->intermediate_size = I;
  cfg->vocab_size = V;
  cfg->max_position_embeddings = P;
  cfg->type_vocab_size = 2;
  cfg->layer_norm_eps = 1e-12f;
  cfg->hidden_act = AF_GELU_ERF;
  cfg->hidden_dropout_prob = 0.1f;
  cfg->attention_probs_dropout_prob = 0.1f;
  cfg->classifier_dropout = -1.0f;
  cfg->initializer_range = 0.02f;
  cfg->num_labels = 0;
  cfg->pad_token_id = 0;
  snprintf(cfg->model_type, sizeof cfg->model_type, "bert");
  return AF_OK;
}
