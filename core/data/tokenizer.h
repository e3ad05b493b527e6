/* BERT's tokenizer: basic tokenization (clean, whitespace, CJK, lowercase + accent strip
 * with utf8proc NFD for uncased vocabularies, punctuation split) then greedy longest-match
 * WordPiece, and the [CLS] a [SEP] (b [SEP]) encoding with segment ids and mask. */
#ifndef AF_TOKENIZER_H
#define AF_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "core/base/status.h"

typedef struct af_tokenizer af_tokenizer;

typedef struct {
  int lowercase;     /* -1: auto (from tokenizer_config.json do_lower_case, else 1) */
  int strip_accents; /* -1: follow lowercase (BERT's rule), 0/1 forced */
  int tokenize_cjk;  /* -1: auto (1) */
} af_tokenizer_opts;

/* Load vocab.txt (and tokenizer_config.json if present) from a model directory.
 * Missing file, empty vocab, duplicate tokens, or a vocab without [CLS], [SEP], [UNK],
 * [PAD] is an error naming the file. opts may be NULL (all auto). */
af_status af_tokenizer_load(const char *model_dir, const af_tokenizer_opts *opts, af_tokenizer **tok);
void af_tokenizer_free(af_tokenizer *tok);  /* NULL is fine */

int af_tokenizer_vocab_size(const af_tokenizer *tok);
const char *af_tokenizer_token(const af_tokenizer *tok, int id);  /* NULL when out of range */
int af_tokenizer_id(const af_tokenizer *tok, const char *token);   /* -1 when absent */
int af_tokenizer_cls(const af_tokenizer *tok);
int af_tokenizer_sep(const af_tokenizer *tok);
int af_tokenizer_pad(const af_tokenizer *tok);
int af_tokenizer_unk(const af_tokenizer *tok);

/* Tokenize one text (UTF-8, len bytes) into WordPiece ids, no special tokens.
 * Invalid UTF-8 sequences are replaced by U+FFFD (which then maps like any char).
 * Writes at most cap ids to ids, returns the full count in *n (may exceed cap). */
af_status af_tokenize(const af_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                      size_t cap, size_t *n);

/* An encoded example: [CLS] a [SEP] or [CLS] a [SEP] b [SEP], truncated to max_len
 * (longest-first for pairs, as Hugging Face does). */
typedef struct {
  int32_t *ids;       /* [len] */
  int32_t *type_ids;  /* [len] 0 for a and its [CLS]/[SEP], 1 for b and its [SEP] */
  int len;
  int truncated;      /* 1 when tokens were dropped */
} af_encoding;

/* b may be NULL. The encoding's arrays are malloc'ed; free with af_encoding_free. */
af_status af_encode(const af_tokenizer *tok, const char *a, size_t alen, const char *b, size_t blen,
                    int max_len, af_encoding *enc);
void af_encoding_free(af_encoding *enc);

#endif
