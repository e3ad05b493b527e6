/* BERT's WordPiece tokenizer, matching Hugging Face `tokenizers` (BertNormalizer +
 * BertPreTokenizer + WordPiece + the [CLS]/[SEP] template), which is what
 * BertTokenizerFast and sentence-transformers use. One pass over the text: decode UTF-8,
 * classify and normalize each code point, cut words at whitespace/punctuation/CJK, and run
 * greedy longest-match WordPiece on each word with a hash table over the vocabulary.
 *
 * Where the fast (Rust) tokenizer and the original Python BertTokenizer disagree we follow
 * the fast one (tests/fixtures/tokenizer_golden.jsonl is made with it):
 *  - unassigned code points (Cn) are kept (Python drops every C* category);
 *  - U+2028/U+2029 and other White_Space characters are spaces (Python: only Zs + \t\n\r);
 *  - accents are stripped before lowercasing, per code point (so no final-sigma rule);
 *  - CJK range 0x2B920-0x2CEAF (Python: 0x2B820), a typo carried by the Rust port;
 *  - pairs truncate longest-first by halves: with n1 <= n2 tokens and room r, the shorter
 *    keeps n1 when n1 <= r - n1, else a gets r/2 and b the rest (b wins ties), where
 *    Python removes one token at a time (a wins ties);
 *  - character categories come from the reference's older Unicode tables, applied as
 *    corrections to utf8proc (core/data/tokenizer_unicode.inc).
 * Both agree that [CLS], [SEP], [UNK], [PAD], [MASK] written in the raw text are matched
 * as those tokens. */
#include "core/data/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100  /* WordPiece max_input_chars_per_word: longer words are [UNK] */
#define WORD_BUF 512        /* bytes kept per word: 100 chars x 4 bytes + slack */
#define N_SPECIAL 5

struct af_tokenizer {
  int n;                 /* vocabulary size */
  char *strings;         /* all tokens, NUL-terminated, back to back */
  uint32_t *offset;      /* [n] start of token i in strings */
  uint32_t *length;      /* [n] byte length of token i */
  int32_t *slot_id;      /* [cap] id stored in each hash slot, -1 when empty */
  uint64_t *slot_hash;   /* [cap] full hash of the slot's token */
  uint64_t mask;         /* cap - 1 (cap is a power of two) */
  size_t max_tok_bytes;  /* longest token, bounds the WordPiece search */
  int cls, sep, pad, unk, mask_id;
  int special[N_SPECIAL]; /* ids matched verbatim in raw text (HF added tokens) */
  int n_special;
  int lowercase, strip_accents, tokenize_cjk;
};

/* ---- vocabulary hash table (FNV-1a, open addressing, linear probing) ---- */

#define FNV_OFF 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static inline uint64_t fnv_step(uint64_t h, unsigned char c) { return (h ^ c) * FNV_PRIME; }

static uint64_t fnv(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = fnv_step(h, (unsigned char)s[i]);
  return h;
}

/* Hash state after "##": continuation pieces are looked up as "##" + piece. */
static uint64_t fnv_cont(void) { return fnv(FNV_OFF, "##", 2); }

/* Find the id of (cont ? "##" : "") + s[0..n) given its hash h. */
static int vocab_find(const af_tokenizer *t, uint64_t h, int cont, const char *s, size_t n) {
  size_t want = n + (cont ? 2 : 0);
  for (uint64_t i = h & t->mask;; i = (i + 1) & t->mask) {
    int32_t id = t->slot_id[i];
    if (id < 0) return -1;
    if (t->slot_hash[i] != h || t->length[id] != want) continue;
    const char *tok = t->strings + t->offset[id];
    if (cont) {
      if (tok[0] != '#' || tok[1] != '#') continue;
      tok += 2;
    }
    if (memcmp(tok, s, n) == 0) return id;
  }
}

int af_tokenizer_vocab_size(const af_tokenizer *t) { return t->n; }
const char *af_tokenizer_token(const af_tokenizer *t, int id) {
  return (id >= 0 && id < t->n) ? t->strings + t->offset[id] : NULL;
}
int af_tokenizer_id(const af_tokenizer *t, const char *token) {
  size_t n = strlen(token);
  return vocab_find(t, fnv(FNV_OFF, token, n), 0, token, n);
}
int af_tokenizer_cls(const af_tokenizer *t) { return t->cls; }
int af_tokenizer_sep(const af_tokenizer *t) { return t->sep; }
int af_tokenizer_pad(const af_tokenizer *t) { return t->pad; }
int af_tokenizer_unk(const af_tokenizer *t) { return t->unk; }

void af_tokenizer_free(af_tokenizer *t) {
  if (!t) return;
  free(t->strings);
  free(t->offset);
  free(t->length);
  free(t->slot_id);
  free(t->slot_hash);
  free(t);
}

static af_status read_file(const char *path, char **data, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return AF_FAIL(AF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (!buf) { fclose(f); return AF_FAIL(AF_ERR_NOMEM, "out of memory reading %s", path); }
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *nb = realloc(buf, 2 * cap + 1);
    if (!nb) free(buf);
    buf = nb;
    cap *= 2;
  }
  int err = ferror(f);
  fclose(f);
  if (err) { free(buf); return AF_FAIL(AF_ERR_IO, "cannot read %s", path); }
  buf[n] = 0;
  *data = buf;
  *len = n;
  return AF_OK;
}

/* One token per line (id = line number), as BERT's vocab.txt; the trailing \n or \r\n is
 * not part of the token. A final line without newline counts; a final empty line does not. */
static af_status vocab_parse(af_tokenizer *t, const char *path, char *data, size_t len) {
  int n = 0;
  for (size_t i = 0; i < len; i++) n += data[i] == '\n';
  if (len && data[len - 1] != '\n') n++;
  if (n == 0) return AF_FAIL(AF_ERR_FORMAT, "%s: empty vocabulary", path);
  if (len > UINT32_MAX) return AF_FAIL(AF_ERR_FORMAT, "%s: vocabulary file too large", path);
  t->n = n;
  t->strings = data; /* tokens are NUL-terminated in place */
  uint64_t cap = 16;
  while (cap < 2 * (uint64_t)n) cap <<= 1;
  t->mask = cap - 1;
  AF_TRY(af_malloc((void **)&t->offset, (size_t)n * sizeof *t->offset, "vocabulary offsets"));
  AF_TRY(af_malloc((void **)&t->length, (size_t)n * sizeof *t->length, "vocabulary lengths"));
  AF_TRY(af_malloc((void **)&t->slot_id, cap * sizeof *t->slot_id, "vocabulary hash table"));
  AF_TRY(af_malloc((void **)&t->slot_hash, cap * sizeof *t->slot_hash, "vocabulary hash table"));
  memset(t->slot_id, 0xff, cap * sizeof *t->slot_id);
  size_t p = 0;
  for (int id = 0; id < n; id++) {
    size_t e = p;
    while (e < len && data[e] != '\n') e++;
    size_t end = e;
    if (end > p && data[end - 1] == '\r') end--;
    data[end] = 0;
    t->offset[id] = (uint32_t)p;
    t->length[id] = (uint32_t)(end - p);
    if (end - p > t->max_tok_bytes) t->max_tok_bytes = end - p;
    uint64_t h = fnv(FNV_OFF, data + p, end - p);
    uint64_t i = h & t->mask;
    for (; t->slot_id[i] >= 0; i = (i + 1) & t->mask) {
      int32_t o = t->slot_id[i];
      if (t->slot_hash[i] == h && t->length[o] == end - p && !memcmp(data + t->offset[o], data + p, end - p))
        return AF_FAIL(AF_ERR_FORMAT, "%s:%d: duplicate token '%s' (first on line %d)", path, id + 1,
                       data + p, o + 1);
    }
    t->slot_id[i] = id;
    t->slot_hash[i] = h;
    p = e + 1;
  }
  return AF_OK;
}

/* tokenizer_config.json: do_lower_case, strip_accents, tokenize_chinese_chars. */
static af_status read_config(const char *dir, int *lower, int *strip, int *cjk) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  FILE *f = fopen(path, "rb");
  if (!f) return AF_OK; /* optional */
  fclose(f);
  char *data;
  size_t len;
  AF_TRY(read_file(path, &data, &len));
  cJSON *j = cJSON_ParseWithLength(data, len);
  free(data);
  if (!j || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    return AF_FAIL(AF_ERR_FORMAT, "%s: not a JSON object", path);
  }
  const cJSON *v;
  af_status s = AF_OK;
  if ((v = cJSON_GetObjectItemCaseSensitive(j, "do_lower_case")) && cJSON_IsBool(v)) *lower = cJSON_IsTrue(v);
  if ((v = cJSON_GetObjectItemCaseSensitive(j, "strip_accents")) && cJSON_IsBool(v)) *strip = cJSON_IsTrue(v);
  if ((v = cJSON_GetObjectItemCaseSensitive(j, "tokenize_chinese_chars")) && cJSON_IsBool(v))
    *cjk = cJSON_IsTrue(v);
  if ((v = cJSON_GetObjectItemCaseSensitive(j, "do_lower_case")) && !cJSON_IsBool(v))
    s = AF_FAIL(AF_ERR_FORMAT, "%s: do_lower_case must be true or false", path);
  cJSON_Delete(j);
  return s;
}

af_status af_tokenizer_load(const char *model_dir, const af_tokenizer_opts *opts, af_tokenizer **out) {
  *out = NULL;
  char path[4096];
  snprintf(path, sizeof path, "%s/vocab.txt", model_dir);
  char *data;
  size_t len;
  AF_TRY(read_file(path, &data, &len));
  af_tokenizer *t = calloc(1, sizeof *t);
  if (!t) {
    free(data);
    return AF_FAIL(AF_ERR_NOMEM, "out of memory loading %s", path);
  }
  af_status s = vocab_parse(t, path, data, len);
  if (!t->strings) free(data);
  if (s != AF_OK) { af_tokenizer_free(t); return s; }

  static const char *names[N_SPECIAL] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};
  int ids[N_SPECIAL];
  char missing[64] = "";
  for (int i = 0; i < N_SPECIAL; i++) {
    ids[i] = af_tokenizer_id(t, names[i]);
    if (ids[i] < 0 && i < 4) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                                      missing[0] ? ", " : "", names[i]);
    if (ids[i] >= 0) t->special[t->n_special++] = ids[i];
  }
  if (missing[0]) {
    af_tokenizer_free(t);
    return AF_FAIL(AF_ERR_FORMAT, "%s: vocabulary lacks the special token(s) %s", path, missing);
  }
  t->cls = ids[0], t->sep = ids[1], t->unk = ids[2], t->pad = ids[3], t->mask_id = ids[4];

  int lower = 1, strip = -1, cjk = 1;
  if ((s = read_config(model_dir, &lower, &strip, &cjk)) != AF_OK) { af_tokenizer_free(t); return s; }
  if (opts && opts->lowercase >= 0) lower = opts->lowercase != 0;
  if (opts && opts->strip_accents >= 0) strip = opts->strip_accents != 0;
  if (opts && opts->tokenize_cjk >= 0) cjk = opts->tokenize_cjk != 0;
  t->lowercase = lower;
  t->strip_accents = strip < 0 ? lower : strip;
  t->tokenize_cjk = cjk;
  *out = t;
  return AF_OK;
}

/* ---- character classes ---- */

enum { CL_DROP, CL_SPACE, CL_CJK, CL_PUNCT, CL_OTHER };

/* ASCII: controls except \t\n\r are dropped; BERT's punctuation is every printable
 * non-alphanumeric ASCII character (33-47, 58-64, 91-96, 123-126). */
static int ascii_class(unsigned c) {
  if (c == '\t' || c == '\n' || c == '\r' || c == ' ') return CL_SPACE;
  if (c < 32 || c == 127) return CL_DROP;
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
    return CL_PUNCT;
  return CL_OTHER;
}

/* The CJK ranges of tokenizers' BertNormalizer. Note 0x2B920 (not BERT's 0x2B820): the
 * Rust port carries this typo, and we match it. */
static int is_cjk(int32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Unicode White_Space (Rust's char::is_whitespace) minus the ones that are Cc (those are
 * dropped as controls first): includes the Zs space separators and U+2028/U+2029. */
static int is_space_u(int32_t c) {
  return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Character flags as the reference sees them: utf8proc's general category, corrected by
 * the generated table for the code points where tokenizers' older category tables (or
 * newer lowercase tables) disagree; see tests/reference/make_unicode_legacy.py. */
#include "core/data/tokenizer_unicode.inc"
enum { F_CONTROL = 1, F_PUNCT = 2, F_MN = 4 };

static int char_flags(int32_t c) {
  if (c >= legacy_class[0].lo && c <= legacy_class[sizeof legacy_class / sizeof legacy_class[0] - 1].hi) {
    size_t lo = 0, hi = sizeof legacy_class / sizeof legacy_class[0];
    while (lo < hi) {
      size_t m = (lo + hi) / 2;
      if (c < legacy_class[m].lo) hi = m;
      else if (c > legacy_class[m].hi) lo = m + 1;
      else return legacy_class[m].flags;
    }
  }
  utf8proc_category_t k = utf8proc_category(c);
  /* Cc, Cf, Co, Cs are controls; unassigned (Cn) code points are kept, as tokenizers does. */
  if (k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
      k == UTF8PROC_CATEGORY_CS)
    return F_CONTROL;
  if (k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO) return F_PUNCT;
  if (k == UTF8PROC_CATEGORY_MN) return F_MN;
  return 0;
}

static inline int is_punct(int32_t c) {
  return c < 128 ? ascii_class((unsigned)c) == CL_PUNCT : (char_flags(c) & F_PUNCT) != 0;
}

/* Class of an input code point before normalization (cleaning, whitespace, CJK). */
static int input_class(const af_tokenizer *t, int32_t c) {
  if (c < 128) return ascii_class((unsigned)c);
  if (c == 0xFFFD || (char_flags(c) & F_CONTROL)) return CL_DROP;
  if (is_space_u(c)) return CL_SPACE;
  if (t->tokenize_cjk && is_cjk(c)) return CL_CJK;
  return CL_OTHER;
}

/* ---- UTF-8 ---- */

static inline size_t put_utf8(char *o, int32_t c) {
  if (c < 0x80) { o[0] = (char)c; return 1; }
  if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* Decode one code point at s[*i] (s[*i] >= 0x80). Invalid sequences (bad lead, truncated,
 * overlong, surrogate, > U+10FFFF) yield U+FFFD and consume the maximal invalid prefix,
 * as Python's decode(errors="replace") does. */
static int32_t decode_utf8(const unsigned char *s, size_t len, size_t *i) {
  size_t p = *i;
  unsigned c = s[p];
  int need;
  int32_t cp;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2; cp = c & 0x0F;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3; cp = c & 0x07;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else { *i = p + 1; return 0xFFFD; }
  p++;
  for (int k = 0; k < need; k++, p++) {
    if (p >= len) { *i = p; return 0xFFFD; }
    unsigned b = s[p];
    if (b < lo || b > hi) { *i = p; return 0xFFFD; }
    lo = 0x80, hi = 0xBF;
    cp = (cp << 6) | (int32_t)(b & 0x3F);
  }
  *i = p;
  return cp;
}

/* ---- WordPiece and the output sink ---- */

typedef struct {
  int32_t *ids;
  size_t cap, n;
} sink;

static inline void emit(sink *o, int32_t id) {
  if (o->n < o->cap) o->ids[o->n] = id;
  o->n++;
}

typedef struct {
  char buf[WORD_BUF];
  size_t bytes;  /* bytes stored in buf */
  size_t chars;  /* chars seen, may exceed MAX_WORD_CHARS (then buf is incomplete) */
} word;

/* Greedy longest-match-first over w; the whole word becomes [UNK] when any position has
 * no matching piece. */
static void wordpiece(const af_tokenizer *t, word *w, sink *o) {
  if (w->chars == 0) return;
  if (w->chars > MAX_WORD_CHARS) {
    emit(o, t->unk);
    w->bytes = w->chars = 0;
    return;
  }
  const char *s = w->buf;
  size_t n = w->bytes;
  int32_t pieces[MAX_WORD_CHARS];
  int np = 0;
  size_t start = 0;
  while (start < n) {
    /* Hash every prefix s[start..end) at char boundaries in one forward pass, then probe
     * from the longest down. */
    uint64_t hs[MAX_WORD_CHARS];
    size_t ends[MAX_WORD_CHARS];
    int ne = 0;
    int cont = start > 0;
    uint64_t h = cont ? fnv_cont() : FNV_OFF;
    size_t limit = t->max_tok_bytes;
    for (size_t e = start; e < n && e - start < limit;) {
      size_t k = e + 1;
      h = fnv_step(h, (unsigned char)s[e]);
      while (k < n && ((unsigned char)s[k] & 0xC0) == 0x80) h = fnv_step(h, (unsigned char)s[k++]);
      hs[ne] = h;
      ends[ne++] = k;
      e = k;
    }
    int id = -1;
    size_t end = start;
    for (int k = ne - 1; k >= 0; k--) {
      id = vocab_find(t, hs[k], cont, s + start, ends[k] - start);
      if (id >= 0) { end = ends[k]; break; }
    }
    if (id < 0) {
      emit(o, t->unk);
      w->bytes = w->chars = 0;
      return;
    }
    pieces[np++] = id;
    start = end;
  }
  for (int i = 0; i < np; i++) emit(o, pieces[i]);
  w->bytes = w->chars = 0;
}

static inline void word_add(word *w, int32_t c) {
  if (w->chars++ < MAX_WORD_CHARS) w->bytes += put_utf8(w->buf + w->bytes, c);
}

/* A single-character word (punctuation, CJK): its own piece or [UNK]. */
static void emit_char(const af_tokenizer *t, word *w, int32_t c, sink *o) {
  wordpiece(t, w, o);
  word_add(w, c);
  wordpiece(t, w, o);
}

/* Lowercase like Rust's char::to_lowercase: utf8proc's simple mapping plus the one
 * code point whose full mapping is two characters. */
static int lower_full(int32_t c, int32_t out[2]) {
  if (c == 0x130) { out[0] = 'i'; out[1] = 0x307; return 2; }
  size_t lo = 0, hi = sizeof legacy_lower / sizeof legacy_lower[0];
  while (lo < hi) {
    size_t m = (lo + hi) / 2;
    if (c < legacy_lower[m].from) hi = m;
    else if (c > legacy_lower[m].from) lo = m + 1;
    else { out[0] = legacy_lower[m].to; return 1; }
  }
  out[0] = utf8proc_tolower(c);
  return 1;
}

/* Normalize one non-ASCII, non-space, non-CJK code point (strip accents = NFD then drop
 * Mn, then lowercase, in tokenizers' order) and add the results to the word, cutting at
 * punctuation that the normalization produced. */
static void add_normalized(const af_tokenizer *t, word *w, int32_t c, sink *o) {
  int32_t dec[32];
  int nd = 1;
  dec[0] = c;
  if (t->strip_accents) {
    int last = 0;
    utf8proc_ssize_t r = utf8proc_decompose_char(c, dec, 32, UTF8PROC_DECOMPOSE, &last);
    nd = (r > 0 && r <= 32) ? (int)r : 1;
    if (r <= 0 || r > 32) dec[0] = c;
  }
  for (int i = 0; i < nd; i++) {
    int32_t d = dec[i];
    if (t->strip_accents && d >= 128 && (char_flags(d) & F_MN)) continue;
    int32_t lc[2];
    int nl = 1;
    lc[0] = d;
    if (t->lowercase) nl = lower_full(d, lc);
    for (int j = 0; j < nl; j++) {
      int32_t x = lc[j];
      if (is_punct(x)) emit_char(t, w, x, o);
      else word_add(w, x);
    }
  }
}

static void run(const af_tokenizer *t, const char *text, size_t len, sink *o) {
  const unsigned char *s = (const unsigned char *)text;
  word w;
  w.bytes = w.chars = 0;
  int lower = t->lowercase;
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    if (c < 128) {
      int k = ascii_class(c);
      if (k == CL_OTHER) {
        word_add(&w, (int32_t)(lower && c >= 'A' && c <= 'Z' ? c + 32 : c));
      } else if (k == CL_SPACE) {
        wordpiece(t, &w, o);
      } else if (k == CL_PUNCT) {
        /* Special tokens ([CLS], [MASK], ...) in the raw text are matched verbatim,
         * as Hugging Face's added tokens are. */
        if (c == '[') {
          int hit = 0;
          for (int k2 = 0; k2 < t->n_special && !hit; k2++) {
            int id = t->special[k2];
            size_t L = t->length[id];
            if (len - i >= L && !memcmp(s + i, t->strings + t->offset[id], L)) {
              wordpiece(t, &w, o);
              emit(o, id);
              i += L;
              hit = 1;
            }
          }
          if (hit) continue;
        }
        emit_char(t, &w, (int32_t)c, o);
      }
      i++;
      continue;
    }
    int32_t cp = decode_utf8(s, len, &i);
    switch (input_class(t, cp)) {
    case CL_DROP: break;
    case CL_SPACE: wordpiece(t, &w, o); break;
    case CL_CJK: /* its own word; compatibility ideographs still go through NFD */
      wordpiece(t, &w, o);
      if (t->strip_accents || t->lowercase) add_normalized(t, &w, cp, o);
      else word_add(&w, cp);
      wordpiece(t, &w, o);
      break;
    default:
      if (!t->strip_accents && !t->lowercase) {
        if (is_punct(cp)) emit_char(t, &w, cp, o);
        else word_add(&w, cp);
      } else {
        add_normalized(t, &w, cp, o);
      }
    }
  }
  wordpiece(t, &w, o);
}

af_status af_tokenize(const af_tokenizer *tok, const char *text, size_t len, int32_t *ids, size_t cap,
                      size_t *n) {
  if (!tok || (!text && len) || (!ids && cap)) return AF_FAIL(AF_ERR_ARG, "af_tokenize: NULL argument");
  sink o = {ids, cap, 0};
  if (len) run(tok, text, len, &o);
  *n = o.n;
  return AF_OK;
}

/* Tokenize into a malloc'ed array (the caller frees *out). */
static af_status tokenize_alloc(const af_tokenizer *tok, const char *text, size_t len, int32_t **out,
                                size_t *n) {
  size_t cap = len / 2 + 16;
  int32_t *ids;
  AF_TRY(af_malloc((void **)&ids, cap * sizeof *ids, "token ids"));
  af_status s = af_tokenize(tok, text, len, ids, cap, n);
  if (s == AF_OK && *n > cap) {
    free(ids);
    AF_TRY(af_malloc((void **)&ids, *n * sizeof *ids, "token ids"));
    s = af_tokenize(tok, text, len, ids, *n, n);
  }
  if (s != AF_OK) { free(ids); return s; }
  *out = ids;
  return AF_OK;
}

void af_encoding_free(af_encoding *enc) {
  if (!enc) return;
  free(enc->ids);
  free(enc->type_ids);
  enc->ids = enc->type_ids = NULL;
  enc->len = 0;
}

af_status af_encode(const af_tokenizer *tok, const char *a, size_t alen, const char *b, size_t blen,
                    int max_len, af_encoding *enc) {
  memset(enc, 0, sizeof *enc);
  int pair = b != NULL;
  int added = pair ? 3 : 2;
  if (max_len < added)
    return AF_FAIL(AF_ERR_ARG, "max_len %d is too short: a %s needs at least %d tokens", max_len,
                   pair ? "pair" : "single text", added);
  int32_t *ia = NULL, *ib = NULL;
  size_t na = 0, nb = 0;
  AF_TRY(tokenize_alloc(tok, a, alen, &ia, &na));
  if (pair) {
    af_status s = tokenize_alloc(tok, b, blen, &ib, &nb);
    if (s != AF_OK) { free(ia); return s; }
  }
  size_t room = (size_t)(max_len - added);
  size_t ka = na, kb = nb;
  if (!pair) {
    if (ka > room) ka = room;
  } else if (na + nb > room) {
    /* tokenizers' longest_first: with n1 <= n2 the shorter keeps its length when it fits
     * in half, else both get half (the longer one the odd token; b on ties). */
    size_t n1 = na, n2 = nb;
    int swap = n1 > n2;
    if (swap) { size_t x = n1; n1 = n2; n2 = x; }
    n2 = n1 > room ? n1 : (n1 > room - n1 ? n1 : room - n1);
    if (n1 + n2 > room) {
      n1 = room / 2;
      n2 = n1 + room % 2;
    }
    if (swap) { size_t x = n1; n1 = n2; n2 = x; }
    ka = na < n1 ? na : n1;
    kb = nb < n2 ? nb : n2;
  }
  enc->truncated = ka < na || kb < nb;
  size_t total = ka + kb + (size_t)added;
  af_status s = af_malloc((void **)&enc->ids, total * sizeof *enc->ids, "encoding ids");
  if (s == AF_OK) s = af_malloc((void **)&enc->type_ids, total * sizeof *enc->type_ids, "encoding type ids");
  if (s != AF_OK) {
    free(ia);
    free(ib);
    af_encoding_free(enc);
    return s;
  }
  size_t p = 0;
  enc->ids[p] = tok->cls, enc->type_ids[p++] = 0;
  for (size_t i = 0; i < ka; i++) enc->ids[p] = ia[i], enc->type_ids[p++] = 0;
  enc->ids[p] = tok->sep, enc->type_ids[p++] = 0;
  if (pair) {
    for (size_t i = 0; i < kb; i++) enc->ids[p] = ib[i], enc->type_ids[p++] = 1;
    enc->ids[p] = tok->sep, enc->type_ids[p++] = 1;
  }
  enc->len = (int)p;
  free(ia);
  free(ib);
  return AF_OK;
}
