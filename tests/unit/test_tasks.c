/* Task readers on fixture files this test writes itself, one per format and quirk: CoLA
 * without header, MRPC with BOM and CRLF, STS-B regression, MNLI's two dev sets, RTE's extra
 * empty field, quoted CSV (AG News, Yelp), the IMDb tree and CSV, the generic task, the
 * default task built from a small Packages file; bad rows (fail listing them, or skip and
 * count); the token cache (hit, invalidation on vocab/max_len/file change, corrupt file). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/base/fsutil.h"
#include "core/data/task.h"
#include "core/data/tokenizer.h"
#include "tests/testutil.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static char root[4096];

/* Write DIR/NAME (relative to root), creating folders. Returns the folder path. */
static const char *put(const char *dir, const char *name, const char *content) {
  static char d[4096];
  snprintf(d, sizeof d, "%s/%s", root, dir);
  char path[8192];
  snprintf(path, sizeof path, "%s/%s", d, name);
  char *slash = strrchr(path, '/');
  *slash = 0;
  if (af_mkdirs(path) != AF_OK) { fprintf(stderr, "%s\n", af_last_error()); exit(1); }
  *slash = '/';
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); exit(1); }
  fputs(content, f);
  fclose(f);
  return d;
}

static af_task *open_task(const char *name, const char *dir, const af_task_opts *o) {
  af_task *t = NULL;
  char d[4200];
  snprintf(d, sizeof d, "%s/%s", root, dir);
  af_status s = af_task_open(name, d, o, &t);
  if (s != AF_OK) {
    fprintf(stderr, "open %s: %s\n", name, af_last_error());
    af_test_failures++;
  }
  return t;
}

static af_split *split(af_task *t, const char *name) {
  af_split *s = NULL;
  if (!t) return NULL;
  if (af_task_split(t, name, &s) != AF_OK) {
    fprintf(stderr, "split %s/%s: %s\n", af_task_name(t), name, af_last_error());
    af_test_failures++;
  }
  return s;
}

static int streq(const char *a, const char *b) {
  if (a && b && !strcmp(a, b)) return 1;
  fprintf(stderr, "  got '%s' want '%s'\n", a ? a : "(null)", b ? b : "(null)");
  return 0;
}

static void test_glue(void) {
  /* CoLA: no header in train/dev; test has one */
  put("CoLA", "train.tsv", "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
                           "gj04\t0\t*\tThey drank the pub.\n");
  put("CoLA", "test.tsv", "index\tsentence\n0\tBill whistled past the house.\n");
  af_task *t = open_task("CoLA", "CoLA", NULL);
  af_split *s = split(t, "train");
  CHECK(s && s->n == 2 && s->labels[0] == 1 && s->labels[1] == 0 && !s->pair && s->has_labels);
  CHECK(s && streq(af_split_text_a(s, 1), "They drank the pub.") && af_split_text_b(s, 1) == NULL && s->line[1] == 2);
  CHECK(t && af_task_metrics(t)->primary == AF_METRIC_MCC && af_task_num_labels(t) == 2);
  s = split(t, "test");
  CHECK(s && s->n == 1 && !s->has_labels && isnan(s->labels[0]) && streq(af_split_text_a(s, 0), "Bill whistled past the house."));
  af_split *again = split(t, "test");
  CHECK(again == s);  /* memoized */
  af_task_free(t);

  /* SST-2: quotes are plain text in GLUE TSV */
  put("SST-2", "train.tsv", "sentence\tlabel\n\"a stirring , funny \ttwist\t1\n");  /* wrong field count */
  put("SST-2", "dev.tsv", "sentence\tlabel\nit 's a \"charming\" and often affecting journey . \t1\n");
  t = open_task("sst-2", "SST-2", NULL);
  s = split(t, "dev");
  CHECK(s && s->n == 1 && streq(af_split_text_a(s, 0), "it 's a \"charming\" and often affecting journey . "));
  af_split *bad;
  CHECK(af_task_split(t, "train", &bad) == AF_ERR_FORMAT);
  CHECK(strstr(af_last_error(), "SST-2/train.tsv:2: expected 2 fields, found 3") != NULL);
  af_task_free(t);

  /* MRPC: BOM and CRLF */
  put("MRPC", "train.tsv", "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\r\n"
                           "1\t702876\t702977\tAmrozi accused his brother.\tReferring to him as only \"the witness\".\r\n"
                           "0\t2108705\t2108831\tYucaipa owned Dominick's.\tYucaipa bought Dominick's in 1995.\r\n");
  t = open_task("mrpc", "MRPC", NULL);
  s = split(t, "train");
  CHECK(s && s->n == 2 && s->pair && s->labels[0] == 1 && s->labels[1] == 0);
  CHECK(s && streq(af_split_text_b(s, 0), "Referring to him as only \"the witness\"."));  /* no CR kept */
  CHECK(t && af_task_metrics(t)->primary == AF_METRIC_F1);
  af_task_free(t);

  /* STS-B: regression, sentence1/2 and score in columns 8/9/10 */
  put("STS-B", "train.tsv",
      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
      "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
      "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute.\tA man plays.\t3.800\n");
  t = open_task("sts-b", "STS-B", NULL);
  s = split(t, "train");
  CHECK(t && af_task_num_labels(t) == 1 && af_task_label_name(t, 0) == NULL && streq(af_task_name(t), "stsb"));
  CHECK(s && s->n == 2 && fabsf(s->labels[1] - 3.8f) < 1e-6f && streq(af_split_text_a(s, 0), "A plane is taking off."));
  af_task_free(t);

  /* MNLI: train (12 columns) and both dev sets (16 columns) */
  const char *h12 = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tgold_label\n";
  const char *h16 = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n";
  char buf[2048];
  snprintf(buf, sizeof buf, "%s0\t1\t1e\tgov\tx\tx\tx\tx\tConceptually cream skimming.\tProduct and geography.\tneutral\tneutral\n", h12);
  put("MNLI", "train.tsv", buf);
  snprintf(buf, sizeof buf, "%s0\t1\t1e\tgov\tx\tx\tx\tx\tThe new rights.\tEveryone loves.\tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n"
           "1\t2\t2c\tgov\tx\tx\tx\tx\tThis site.\tThe site is bad.\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n", h16);
  put("MNLI", "dev_matched.tsv", buf);
  snprintf(buf, sizeof buf, "%s0\t1\t1e\tfic\tx\tx\tx\tx\tYour gift.\tYou gave.\tentailment\tentailment\tentailment\tentailment\tentailment\tentailment\n", h16);
  put("MNLI", "dev_mismatched.tsv", buf);
  t = open_task("MNLI", "MNLI", NULL);
  CHECK(t && af_task_num_eval_splits(t) == 2 && streq(af_task_eval_split(t, 0), "dev_matched") &&
        streq(af_task_eval_split(t, 1), "dev_mismatched") && af_task_num_labels(t) == 3);
  s = split(t, "dev_matched");
  CHECK(s && s->n == 2 && s->labels[0] == 2 && s->labels[1] == 0);  /* neutral, contradiction */
  af_split *mm = split(t, "dev_mismatched");
  CHECK(mm && mm->n == 1 && mm->labels[0] == 1);
  CHECK(split(t, "dev") == s);  /* alias */
  s = split(t, "train");
  CHECK(s && s->n == 1 && s->labels[0] == 2);
  af_task_free(t);

  /* RTE: one row with an extra empty field; label from the last field */
  put("RTE", "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
                          "0\tNo weapons found.\tWeapons found.\tnot_entailment\n"
                          "2164\t\"That film wasn't, 'WarGames,' came out.\tThe film \"WarGames\" was shot in 1983.\t\tnot_entailment\n"
                          "2\tA place of sorrow.\tPope was buried.\tentailment\n");
  t = open_task("rte", "RTE", NULL);
  s = split(t, "train");
  CHECK(s && s->n == 3 && s->labels[1] == 1 && s->labels[2] == 0);
  CHECK(s && streq(af_split_text_a(s, 1), "\"That film wasn't, 'WarGames,' came out."));
  af_task_free(t);

  /* QQP, QNLI, WNLI */
  put("QQP", "dev.tsv", "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tWhy?\tHow?\t0\n4\t5\t6\tWhat is it?\tWhat's it?\t1\n");
  t = open_task("qqp", "QQP", NULL);
  s = split(t, "dev");
  CHECK(s && s->n == 2 && s->labels[1] == 1 && af_task_metrics(t)->primary == AF_METRIC_F1);
  af_task_free(t);
  put("QNLI", "dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWhat came?\tThe Vikings came.\tentailment\n");
  t = open_task("qnli", "QNLI", NULL);
  s = split(t, "dev");
  CHECK(s && s->n == 1 && s->labels[0] == 0 && streq(af_task_label_name(t, 1), "not_entailment"));
  af_task_free(t);
  put("WNLI", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\tThe drain is clogged.\tThe hair is clogged.\t0\n");
  t = open_task("wnli", "WNLI", NULL);
  s = split(t, "dev");
  CHECK(s && s->n == 1);
  af_split *x;
  CHECK(af_task_split(t, "validation", &x) == AF_ERR_ARG);
  CHECK(af_task_split(t, "train", &x) == AF_ERR_IO && strstr(af_last_error(), "WNLI/train.tsv: expected the train split file, found no such file"));
  af_task_free(t);

  CHECK(af_task_open("glue9", root, NULL, &t) == AF_ERR_ARG && strstr(af_last_error(), "unknown task 'glue9'"));
}

/* The registry behind af_task_open, `--task` and af.task.*: every entry is found under its
 * own name and under spellings that differ in case, '-', '_' and ' ', its family's reader
 * knows it, and the names list for messages is the registry in order. */
static void test_registry(void) {
  int n = af_task_count();
  CHECK(n == 15 && af_task_info_at(n) == NULL && af_task_info_at(-1) == NULL);
  char list[512] = "";
  for (int i = 0; i < n; i++) {
    const af_task_info *ti = af_task_info_at(i);
    CHECK(ti && ti->name && *ti->name && ti->family);
    if (!ti) continue;
    CHECK(af_task_lookup(ti->name) == ti && af_task_canonical(ti->name) == ti->name);
    char alt[64];  /* "ag_news" -> "-AG News-" */
    size_t j = 0;
    alt[j++] = '-';
    for (const char *p = ti->name; *p && j + 3 < sizeof alt; p++) alt[j++] = *p == '_' ? ' ' : (char)toupper((unsigned char)*p);
    alt[j++] = '-';
    alt[j] = 0;
    CHECK(af_task_lookup(alt) == ti);
    if (af_task_lookup(alt) != ti) fprintf(stderr, "  '%s' does not find %s\n", alt, ti->name);
    int fam = !strcmp(ti->family, "glue") || !strcmp(ti->family, "docs");
    CHECK(fam || !strcmp(ti->family, "generic") || !strcmp(ti->family, "default"));
    if (fam) {  /* opening reads nothing yet: the family's reader must know the name */
      af_task *t = NULL;
      CHECK_OK(af_task_open(alt, root, NULL, &t));
      CHECK(t && streq(af_task_name(t), ti->name));
      af_task_free(t);
    }
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", ti->name);
  }
  CHECK(streq(af_task_names(), list));
  CHECK(streq(af_task_names(), "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, ag_news, yelp_full, "
                               "yelp_polarity, imdb, generic, default"));
  static const char *const alias[][2] = {
      {"SST-2", "sst2"},  {"sst_2", "sst2"},        {"STS-B", "stsb"},           {"sts_b", "stsb"},
      {"ag_news", "ag_news"}, {"AG News", "ag_news"}, {"agnews", "ag_news"},    {"AG-NEWS", "ag_news"},
      {"yelp-full", "yelp_full"}, {"Yelp_Polarity", "yelp_polarity"}, {"yelppolarity", "yelp_polarity"},
      {"IMDb", "imdb"},   {"Generic", "generic"},   {"DEFAULT", "default"},      {"MNLI", "mnli"},
  };
  for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++) {
    CHECK(streq(af_task_canonical(alias[i][0]), alias[i][1]));
    if (!streq(af_task_canonical(alias[i][0]), alias[i][1])) fprintf(stderr, "  alias '%s'\n", alias[i][0]);
  }
  static const char *const unknown[] = {"sst3", "yelp", "glue", "", "sst2x", "ag.news", "mnli_matched"};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CHECK(af_task_lookup(unknown[i]) == NULL && af_task_canonical(unknown[i]) == NULL);
    if (af_task_lookup(unknown[i])) fprintf(stderr, "  '%s' should be unknown\n", unknown[i]);
  }
  CHECK(af_task_lookup(NULL) == NULL);
  af_task *t = NULL;
  CHECK(af_task_open("yelp", root, NULL, &t) == AF_ERR_ARG && t == NULL &&
        strstr(af_last_error(), "unknown task 'yelp': expected one of cola, sst2,") &&
        strstr(af_last_error(), "imdb, generic, default"));
}

static void test_bad_rows(void) {
  put("BAD", "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
                          "0\tfine.\tfine too.\tentailment\n"
                          "1\tonly three\tfields\n"
                          "2\tgood.\tlabel unknown.\tmaybe\n"
                          "3\t  \tempty first.\tentailment\n"
                          "4\tbad \xff byte.\tok.\tentailment\n"
                          "5\tlast good.\tyes.\tnot_entailment\n");
  af_task *t = open_task("rte", "BAD", NULL);
  af_split *s;
  CHECK(af_task_split(t, "train", &s) == AF_ERR_FORMAT);
  const char *e = af_last_error();
  CHECK(strstr(e, "4 bad rows") != NULL);
  CHECK(strstr(e, "BAD/train.tsv:3: expected 4 fields, found 3") != NULL);
  CHECK(strstr(e, "BAD/train.tsv:4: expected a label in {entailment, not_entailment}, found 'maybe'") != NULL);
  CHECK(strstr(e, "BAD/train.tsv:5: expected non-empty text in column 'sentence1', found only spaces") != NULL);
  CHECK(strstr(e, "BAD/train.tsv:6: expected UTF-8 text in column 'sentence1', found byte 0xff at byte 4") != NULL);
  if (af_test_failures) fprintf(stderr, "  message: %s\n", e);
  af_task_free(t);
  af_task_opts o;
  af_task_opts_default(&o);
  o.skip_bad_rows = 1;
  af_set_quiet(1);
  t = open_task("rte", "BAD", &o);
  s = split(t, "train");
  af_set_quiet(0);
  CHECK(s && s->n == 2 && s->bad_rows == 4 && s->line[1] == 7);
  af_task_free(t);
  /* STS-B target that is not a number */
  put("BADS", "dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
                         "0\tg\tf\ty\t1\tn\tn\tA.\tB.\tfive\n");
  t = open_task("stsb", "BADS", NULL);
  CHECK(af_task_split(t, "dev", &s) == AF_ERR_FORMAT && strstr(af_last_error(), "BADS/dev.tsv:2: expected a number as the target, found 'five'"));
  af_task_free(t);
  /* a header without the expected column */
  put("BADH", "dev.tsv", "index\tquestion\ttext\tlabel\n0\ta\tb\tentailment\n");
  t = open_task("qnli", "BADH", NULL);
  CHECK(af_task_split(t, "dev", &s) == AF_ERR_FORMAT && strstr(af_last_error(), "BADH/dev.tsv:1: expected a column named 'sentence'"));
  af_task_free(t);
  /* a file with only a header */
  put("EMPTY", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n");
  t = open_task("wnli", "EMPTY", NULL);
  CHECK(af_task_split(t, "dev", &s) == AF_ERR_FORMAT && strstr(af_last_error(), "expected at least one example"));
  af_task_free(t);
}

static void test_docs(void) {
  put("AG", "train.csv", "\"3\",\"Wall St. Bears Claw Back Into the Black (Reuters)\",\"Reuters - Short-sellers, Wall Street's \"\"dwindling\"\"\nband.\"\r\n"
                         "\"2\",\"Sports title\",\"Sports text\"\n");
  put("AG", "test.csv", "\"4\",\"Sci\",\"Tech\"\n\"5\",\"bad\",\"class\"\n");
  af_task *t = open_task("ag_news", "AG", NULL);
  af_split *s = split(t, "train");
  CHECK(s && s->n == 2 && s->labels[0] == 2 && s->labels[1] == 1 && !s->pair);
  CHECK(s && streq(af_split_text_a(s, 0), "Wall St. Bears Claw Back Into the Black (Reuters) Reuters - Short-sellers, Wall Street's \"dwindling\"\nband."));
  CHECK(t && streq(af_task_label_name(t, 3), "Sci/Tech") && streq(af_task_eval_split(t, 0), "test"));
  CHECK(t && af_task_metrics(t)->n == 2 && af_task_metrics(t)->list[1] == AF_METRIC_MACRO_F1);
  af_split *x;
  CHECK(af_task_split(t, "test", &x) == AF_ERR_FORMAT && strstr(af_last_error(), "AG/test.csv:2: expected a label in {1, 2, 3, 4}, found '5'"));
  af_task_free(t);

  put("YF", "train.csv", "\"5\",\"dr. goldberg offers everything, i look for.\"\n\"1\",\"Unfortunately, the frustration\"\n");
  t = open_task("yelp_full", "YF", NULL);
  s = split(t, "train");
  CHECK(s && s->n == 2 && s->labels[0] == 4 && s->labels[1] == 0 && af_task_num_labels(t) == 5);
  af_task_free(t);
  put("YP", "test.csv", "\"2\",\"good\"\n\"1\",\"bad\"\n");
  t = open_task("yelp-polarity", "YP", NULL);
  s = split(t, "test");
  CHECK(s && s->n == 2 && s->labels[0] == 1 && streq(af_task_label_name(t, 0), "negative"));
  af_task_free(t);

  /* IMDb tree under DIR/aclImdb; neg first, then pos, by numeric id */
  put("IMDB/aclImdb/train/pos", "10_9.txt", "Loved it.<br /><br />Great.");
  put("IMDB/aclImdb/train/pos", "2_8.txt", "Fine film.");
  put("IMDB/aclImdb/train/neg", "0_3.txt", "Terrible.");
  put("IMDB/aclImdb/train/neg", "README", "not a review");
  put("IMDB/aclImdb/test/neg", "1_1.txt", "Bad.");
  put("IMDB/aclImdb/test/pos", "1_10.txt", "Good.");
  t = open_task("imdb", "IMDB", NULL);
  s = split(t, "train");
  CHECK(s && s->n == 3 && s->labels[0] == 0 && s->labels[1] == 1 && s->labels[2] == 1);
  CHECK(s && streq(af_split_text_a(s, 0), "Terrible.") && streq(af_split_text_a(s, 1), "Fine film.") &&
        streq(af_split_text_a(s, 2), "Loved it.  Great."));
  s = split(t, "test");
  CHECK(s && s->n == 2);
  af_task_free(t);
  /* IMDb CSV */
  put("IMDBCSV", "train.csv", "review,sentiment\n\"One of the best, really.\",positive\n\"Awful<br />movie\",negative\n");
  t = open_task("imdb", "IMDBCSV", NULL);
  s = split(t, "train");
  CHECK(s && s->n == 2 && s->labels[0] == 1 && s->labels[1] == 0 && streq(af_split_text_a(s, 1), "Awful movie"));
  af_task_free(t);
}

static void test_generic(void) {
  put("GEN", "train.csv", "id,q,a,tag\n1,\"Is it, really?\",yes,pos\n2,No,\"Not \"\"at\"\" all\",neg\n");
  put("GEN", "dev.csv", "id,q,a,tag\n3,Maybe,So,neg\n");
  af_task_opts o;
  af_task_opts_default(&o);
  o.text_cols = "q,a";
  o.label_col = "tag";
  o.labels = "neg,pos";
  af_task *t = open_task("generic", "GEN", &o);
  af_split *s = split(t, "train");
  CHECK(s && s->n == 2 && s->pair && s->labels[0] == 1 && streq(af_split_text_b(s, 1), "Not \"at\" all"));
  CHECK(t && af_task_is_pair(t) && streq(af_task_eval_split(t, 0), "dev"));
  s = split(t, "dev");
  CHECK(s && s->n == 1);
  af_task_free(t);
  /* TSV without header, columns by number, regression */
  put("GENR", "train.tsv", "x\tfirst text\t0.5\ny\tsecond\t-1e-1\n");
  af_task_opts_default(&o);
  o.header = 0;
  o.text_cols = "2";
  o.label_col = "3";
  o.regression = 1;
  t = open_task("generic", "GENR", &o);
  s = split(t, "train");
  CHECK(s && s->n == 2 && fabsf(s->labels[1] + 0.1f) < 1e-7f && af_task_num_labels(t) == 1);
  af_task_free(t);
  af_task_opts_default(&o);
  o.text_cols = "q";
  o.label_col = "tag";
  CHECK(af_task_open("generic", root, &o, &t) == AF_ERR_ARG && strstr(af_last_error(), "label list"));
}

static const char packages[] =
    "Package: libfoo1\nSource: foo (1.2-3)\nSection: libs\nDescription: foo library runtime\n"
    " The foo library does\n things.\n .\n A second paragraph.\n\n"
    "Package: libfoo-dev\nSource: foo\nSection: libdevel\nDescription: foo library headers\n\n"
    "Package: foo-utils\nSource: foo\nSection: utils\nDescription: tools for foo files\n\n"
    "Package: bar\nSection: contrib/utils\nDescription: the bar tool\n\n"
    "Package: baz\nSection: utils\nDescription: the bar tool\n\n"  /* duplicate text: dropped */
    "Package: qux\nSection: utils\nDescription: qux does X\n\n"
    "Package: qux\nSection: utils\nDescription: qux does X (newer suite)\n\n"  /* same package again */
    "Package: lonely\nSection: games\nDescription: the only game\n\n"         /* class under min_count */
    "Package: libbar2\nSection: non-free/libs\nDescription: bar runtime\n\n"
    "Package: libqux0\nSection: libs\nDescription: qux runtime library\n";

static void test_default(void) {
  const char *d = put("PKG", "Packages", packages);
  char pkgfile[4200], out[4200];
  snprintf(pkgfile, sizeof pkgfile, "%s/Packages", d);
  snprintf(out, sizeof out, "%s/default", d);
  af_default_opts o;
  af_default_opts_init(&o);
  CHECK(o.min_count == 300 && o.dev_percent == 10);
  o.packages = pkgfile;
  o.out_dir = out;
  o.min_count = 2;
  af_default_summary sum;
  CHECK_OK(af_default_build(&o, &sum));
  /* kept: libs {libfoo1, libbar2, libqux0}, utils {foo-utils, bar, qux}; libdevel (1) and games (1) dropped */
  CHECK(sum.num_classes == 2 && streq(sum.names[0], "libs") && streq(sum.names[1], "utils"));
  CHECK(sum.dropped_duplicates == 1 && sum.dropped_same_package == 1 && sum.dropped_small_classes == 2);
  CHECK(sum.packages_read == 10);
  size_t total = 0;
  for (int c = 0; c < sum.num_classes; c++) total += sum.train[c] + sum.dev[c];
  CHECK(total == 6);
  af_default_summary_free(&sum);
  af_default_summary_free(&sum);  /* safe twice */
  /* siblings share a side */
  int dev_foo = af_default_is_dev("foo", 10);
  CHECK(af_default_is_dev("foo", 10) == dev_foo);
  /* the task reads what was written; with dev_percent 50 both splits are non-empty */
  o.dev_percent = 50;
  CHECK_OK(af_default_build(&o, &sum));
  af_default_summary_free(&sum);
  af_task *t;
  CHECK_OK(af_task_open("default", out, NULL, &t));
  if (!t) return;
  CHECK(af_task_num_labels(t) == 2 && streq(af_task_label_name(t, 1), "utils"));
  af_split *tr = NULL, *dv = NULL;
  int has_train = af_default_is_dev("foo", 50) == 0 || af_default_is_dev("bar", 50) == 0 ||
                  af_default_is_dev("qux", 50) == 0 || af_default_is_dev("libbar2", 50) == 0 || af_default_is_dev("libqux0", 50) == 0;
  if (has_train) tr = split(t, "train");
  int found_foo = 0;
  for (int pass = 0; pass < 2; pass++) {
    af_split *s = pass ? NULL : tr;
    if (pass) {
      if (af_task_split(t, "dev", &dv) != AF_OK) { af_clear_error(); continue; }
      s = dv;
    }
    if (!s) continue;
    for (size_t i = 0; i < s->n; i++) {
      const char *txt = af_split_text_a(s, i);
      if (!strcmp(txt, "foo library runtime The foo library does things. A second paragraph.")) {
        found_foo = 1;
        CHECK(pass == af_default_is_dev("foo", 50));  /* split by SOURCE name */
        CHECK(s->labels[i] == 0);
      }
      if (!strcmp(txt, "tools for foo files")) CHECK(pass == af_default_is_dev("foo", 50));
    }
  }
  CHECK(found_foo);
  af_task_free(t);
  CHECK(af_task_open("default", root, NULL, &t) == AF_ERR_IO && strstr(af_last_error(), "labels.txt"));
}

/* ---- tokenization and the cache, with a tiny vocabulary written here ---- */

static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ncat\nsat\non\nmat\na\ndog\n.\n,\n##s\nran\n";

static void test_encode_cache(void) {
  const char *md = put("VOCAB", "vocab.txt", vocab);
  char model[4200];
  snprintf(model, sizeof model, "%s", md);
  af_tokenizer *tok;
  if (af_tokenizer_load(model, NULL, &tok) != AF_OK) {
    fprintf(stderr, "tokenizer: %s\n", af_last_error());
    af_test_failures++;
    return;
  }
  put("ENC", "train.tsv", "index\tsentence1\tsentence2\tlabel\n"
                          "0\tThe cat sat on the mat.\tA dog ran.\tentailment\n"
                          "1\tthe cats\tthe dogs sat on the mat , the mat .\tnot_entailment\n");
  af_task *t = open_task("rte", "ENC", NULL);
  af_split *s = NULL;
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  if (!s) { af_task_free(t); af_tokenizer_free(tok); return; }
  /* [CLS] the cat sat on the mat . [SEP] a dog ran . [SEP] truncated to 8 longest-first */
  CHECK(s->max_len == 8 && s->len[0] == 8 && s->len[1] == 8 && s->truncated[0] && s->n_truncated == 2);
  CHECK(s->ids[s->tok_off[0]] == 2 && s->ids[s->tok_off[0] + 7] == 3 && s->pad_id == 0);
  CHECK(s->type_ids[s->tok_off[0]] == 0 && s->type_ids[s->tok_off[0] + 7] == 1);
  CHECK(!s->from_cache && s->cache_path[0]);
  int32_t first[16];
  memcpy(first, s->ids, 16 * sizeof *first);
  char cache[4096];
  snprintf(cache, sizeof cache, "%s", s->cache_path);
  CHECK(access(cache, R_OK) == 0 && strstr(cache, "/ENC/.autofreeze-cache/rte-train-"));
  af_task_free(t);
  /* second open: from the cache, same ids */
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && s->from_cache && !memcmp(s->ids, first, sizeof first) && s->n_truncated == 2);
  /* another max_len: another key */
  CHECK_OK(af_task_encode(t, s, tok, 32));
  CHECK(!s->from_cache && s->len[0] == 14 && s->n_truncated == 0 && strcmp(s->cache_path, cache));
  af_task_free(t);
  /* corrupt cache file: rebuilt with the same ids */
  FILE *f = fopen(cache, "r+b");
  fseek(f, 70, SEEK_SET);
  fputc(0x7f, f);
  fclose(f);
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && !s->from_cache && !memcmp(s->ids, first, sizeof first));
  af_task_free(t);
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && s->from_cache);  /* rewritten */
  af_task_free(t);
  /* truncated cache file */
  f = fopen(cache, "r+b");
  CHECK(ftruncate(fileno(f), 40) == 0);
  fclose(f);
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && !s->from_cache);
  af_task_free(t);
  /* a changed file: a miss */
  put("ENC", "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tThe cat sat.\tA dog ran.\tentailment\n");
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && !s->from_cache && s->n == 1 && s->len[0] == 8);
  af_task_free(t);
  af_tokenizer_free(tok);
  /* a changed vocab (same size, other order): a miss */
  put("VOCAB", "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\ncat\nthe\nsat\non\nmat\na\ndog\n.\n,\n##s\nran\n");
  CHECK_OK(af_tokenizer_load(model, NULL, &tok));
  t = open_task("rte", "ENC", NULL);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && !s->from_cache && s->ids[1] == 6);  /* "the" is now 6 */
  /* scoring through the task */
  float logits[] = {2.0f, -1.0f};
  af_metrics m;
  CHECK_OK(af_task_score(t, s, logits, &m));
  CHECK(m.primary == AF_METRIC_ACCURACY && m.primary_value == 1.0);
  af_task_free(t);
  /* no_cache */
  af_task_opts o;
  af_task_opts_default(&o);
  o.no_cache = 1;
  t = open_task("rte", "ENC", &o);
  CHECK_OK(af_task_load(t, "train", tok, 8, &s));
  CHECK(s && !s->from_cache && !s->cache_path[0]);
  af_task_free(t);
  af_tokenizer_free(tok);
}

/* af_split_subset: the same pseudo-random subset every time, in file order, renumbered,
 * with labels, lengths and token offsets moved together. */
static void test_subset(void) {
  const char *md = put("VOCAB2", "vocab.txt", vocab);
  af_tokenizer *tok;
  if (af_tokenizer_load(md, NULL, &tok) != AF_OK) {
    af_test_failures++;
    return;
  }
  char body[64 * 1024];
  size_t used = (size_t)snprintf(body, sizeof body, "sentence\tlabel\n");
  for (int i = 0; i < 200; i++)  /* row i: i % 7 + 1 words, label = i % 2 (sorted-file stand-in) */
    used += (size_t)snprintf(body + used, sizeof body - used, "%s\t%d\n",
                             "the cat sat on the mat ." + 2 * (6 - i % 7), i < 100 ? 0 : 1);
  put("SUB", "train.tsv", body);
  size_t kept[2][50];
  for (int rep = 0; rep < 2; rep++) {
    af_task_opts o;
    af_task_opts_default(&o);
    o.no_cache = 1;
    af_task *t = open_task("sst2", "SUB", &o);
    af_split *s = NULL;
    if (!t) return;
    CHECK_OK(af_task_load(t, "train", tok, 16, &s));
    if (!s) { af_task_free(t); return; }
    uint64_t *off = malloc(200 * sizeof *off);
    int32_t *len = malloc(200 * sizeof *len);
    memcpy(off, s->tok_off, 200 * sizeof *off);
    memcpy(len, s->len, 200 * sizeof *len);
    CHECK_OK(af_split_subset(s, 50));
    CHECK(s->n == 50);
    int ones = 0;
    for (size_t k = 0; k < 50; k++) {
      size_t i = 0;  /* recover the original row from its token offset */
      while (i < 200 && off[i] != s->tok_off[k]) i++;
      CHECK(i < 200 && s->len[k] == len[i] && s->labels[k] == (i < 100 ? 0.f : 1.f));
      kept[rep][k] = i;
      if (k) CHECK(kept[rep][k] > kept[rep][k - 1]);  /* file order */
      ones += s->labels[k] == 1.f;
    }
    CHECK(ones > 10 && ones < 40);  /* both halves of the sorted file are represented */
    free(off);
    free(len);
    af_task_free(t);
  }
  CHECK(memcmp(kept[0], kept[1], sizeof kept[0]) == 0);
  af_tokenizer_free(tok);
}

int main(void) {
  snprintf(root, sizeof root, "%s", af_test_tmpdir());
  test_registry();
  test_subset();
  test_glue();
  test_bad_rows();
  test_docs();
  test_generic();
  test_default();
  test_encode_cache();
  af_task_free(NULL);
  return af_test_done("test_tasks");
}
