/* Tiny test helpers shared by the ctest programs: checks that count failures, tolerance
 * comparison that prints the first mismatches and the max error, and skip (exit 77). */
#ifndef AF_TESTUTIL_H
#define AF_TESTUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/run/train.h"

extern int af_test_failures;
#define CHECK(cond) do { if (!(cond)) { af_test_failures++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_OK(expr) do { af_status s_ = (expr); if (s_ != AF_OK) { af_test_failures++; fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, af_last_error()); } } while (0)
/* Compare n values: |got - ref| <= atol + rtol*|ref|. Prints up to 5 mismatches and the
 * max abs/rel error under label. Returns the number of mismatches (also counted). */
int af_test_close(const char *label, const float *got, const float *ref, size_t n, double atol, double rtol);
int af_test_close_d(const char *label, const double *got, const double *ref, size_t n, double atol, double rtol);
/* Print the summary line and return the exit code (0 or 1). */
int af_test_done(const char *name);
/* Exit 77 with a visible reason. */
void af_test_skip(const char *why) __attribute__((noreturn));
/* Environment helpers: AF_SOURCE_DIR, AF_MODEL_DIR (NULL when the model is absent). */
const char *af_test_source_dir(void);
const char *af_test_model_dir(void);
/* A fresh temporary directory (mkdtemp under $TMPDIR), path valid until exit. */
const char *af_test_tmpdir(void);
/* A small learnable task for the tiny fixture model (tests/fixtures/bert_tiny/cls): DIR/NAME.tsv
 * with "sentence\tlabel" rows of min_len .. min_len+len_span-1 common words from its vocabulary;
 * label 1 (every other row) iff the sentence contains "you". Deterministic in seed. */
void af_test_write_you_split(const char *dir, const char *name, int n, uint64_t seed, int min_len, int len_span);
/* The tiny fixture model's folder into model, and the standard "you" task (train: 320 rows,
 * seed 1; dev: 64 rows, seed 2; 4-10 words) written under <tmpdir>/task into data (cap
 * bytes each). 0, or -1 when the folder cannot be made. */
int af_test_tiny_setup(char *model, char *data, size_t cap);
/* A run of the tiny fixture model on such a task (as "sst2"): 6 epochs of batch 16, 16
 * tokens, lr 3e-3, 6 intervals, seed 3, one thread, quiet. Callers change what they test. */
void af_test_tiny_train_opts(af_train_opts *o, const char *model, const char *data, const char *out, af_policy *p);
/* A dataset of a results file, 2-D ones flattened row by row; NULL and *n = 0 when it
 * cannot be read (the failure is counted). Free with free(). */
double *af_test_read_col(const char *file, const char *path, size_t *n);
double *af_test_read_flat(const char *file, const char *path, size_t *n);
/* 1 when dataset `col` of two results files holds the same values, bit for bit (and > 0). */
int af_test_same_col(const char *a_file, const char *b_file, const char *col);
/* A __metadata__ value of the safetensors file DIR/NAME into buf ("" when the file or the
 * key is not there); returns buf. */
const char *af_test_st_meta(const char *dir, const char *name, const char *key, char *buf, size_t cap);
#endif
