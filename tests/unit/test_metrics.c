/* Metrics against values computed by hand (the working is in the comments), including ties
 * for Spearman and the degenerate cases (constant predictions, NaN input, n < 2). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/data/metrics.h"
#include "tests/testutil.h"

static void near(const char *label, double got, double want) {
  af_test_close_d(label, &got, &want, 1, 1e-9, 1e-9);
}

static void test_binary(void) {
  int pred[] = {1, 0, 1, 1, 0}, gold[] = {1, 0, 0, 1, 1};
  /* tp = 2 (0, 3), tn = 1 (1), fp = 1 (2), fn = 1 (4) */
  near("accuracy 3/5", af_metric_accuracy(pred, gold, 5), 0.6);
  near("f1 = 2tp/(2tp+fp+fn) = 4/6", af_metric_f1(pred, gold, 5, 1), 4.0 / 6.0);
  near("mcc = (2*1-1*1)/sqrt(3*3*2*2) = 1/6", af_metric_mcc(pred, gold, 5, 2), 1.0 / 6.0);
  int all1[] = {1, 1, 1, 1, 1}, all0[] = {0, 0, 0, 0, 0};
  near("mcc constant predictions = 0", af_metric_mcc(all1, gold, 5, 2), 0.0);
  near("mcc constant gold = 0", af_metric_mcc(pred, all0, 5, 2), 0.0);
  near("f1 no positives anywhere = 0", af_metric_f1(all0, all0, 5, 1), 0.0);
  near("mcc perfect = 1", af_metric_mcc(gold, gold, 5, 2), 1.0);
  int inv[] = {0, 1, 1, 0, 0};
  near("mcc inverted = -1", af_metric_mcc(inv, gold, 5, 2), -1.0);
  near("accuracy n=0", af_metric_accuracy(pred, gold, 0), 0.0);
}

static void test_multiclass(void) {
  int gold[] = {0, 0, 1, 1, 2, 2}, pred[] = {0, 1, 1, 1, 2, 0};
  /* class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp1 fp0 fn1 -> 2/3 */
  near("macro f1 (0.5+0.8+2/3)/3", af_metric_macro_f1(pred, gold, 6, 3), (0.5 + 0.8 + 2.0 / 3.0) / 3.0);
  /* Gorodkin: c=4, s=6, t=(2,2,2), p=(2,3,1): (24-12)/sqrt((36-14)(36-12)) */
  near("mcc 3 classes", af_metric_mcc(pred, gold, 6, 3), 12.0 / sqrt(22.0 * 24.0));
  /* a class absent from gold and predictions is not averaged in */
  near("macro f1 with an unused class", af_metric_macro_f1(pred, gold, 6, 4), (0.5 + 0.8 + 2.0 / 3.0) / 3.0);
}

static void test_correlations(void) {
  float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
  /* dx = -2..2, dy = (-2,0,1,0,1): sxy 6, sxx 10, syy 6 */
  near("pearson 6/sqrt(60)", af_metric_pearson(x, y, 5), 6.0 / sqrt(60.0));
  /* ranks of y with ties: (1, 2.5, 4.5, 2.5, 4.5): sxy 7, sxx 10, syy 9 (scipy: 0.7378647873726218) */
  near("spearman with ties 7/sqrt(90)", af_metric_spearman(x, y, 5), 7.0 / sqrt(90.0));
  float yr[] = {50, 40, 30, 20, 10};
  near("spearman reversed = -1", af_metric_spearman(x, yr, 5), -1.0);
  float z[] = {1, 8, 27, 64, 125};
  near("spearman monotone = 1", af_metric_spearman(x, z, 5), 1.0);
  float c[] = {3, 3, 3, 3, 3};
  near("pearson constant predictions = 0", af_metric_pearson(c, y, 5), 0.0);
  near("spearman constant predictions = 0", af_metric_spearman(c, y, 5), 0.0);
  near("pearson n=1 = 0", af_metric_pearson(x, y, 1), 0.0);
  float nanv[] = {1, NAN, 3, 4, 5};
  CHECK(isnan(af_metric_pearson(nanv, y, 5)));
  CHECK(isnan(af_metric_spearman(nanv, y, 5)));
}

static void test_compute(void) {
  af_metric_set set = {2, {AF_METRIC_F1, AF_METRIC_ACCURACY}, AF_METRIC_F1};
  /* argmax: 1, 0, 1 (tie -> first: 0), gold 1, 1, 0, 0 */
  float logits[] = {0.1f, 0.9f, 2.0f, -1.0f, -0.5f, 0.5f, 0.3f, 0.3f};
  float gold[] = {1, 1, 0, 0};
  af_metrics m;
  CHECK_OK(af_metrics_compute(&set, 2, logits, gold, 4, &m));
  near("compute accuracy", m.value[AF_METRIC_ACCURACY], 0.5);        /* right: 0, 3 */
  near("compute f1 (tp1 fp1 fn1)", m.value[AF_METRIC_F1], 0.5);
  near("primary = f1", m.primary_value, 0.5);
  CHECK(m.have[AF_METRIC_F1] && m.have[AF_METRIC_ACCURACY] && !m.have[AF_METRIC_MCC]);
  char buf[128];
  af_metrics_format(&set, &m, buf, sizeof buf);
  CHECK(!strcmp(buf, "f1=0.5000* accuracy=0.5000"));
  float badgold[] = {1, 2, 0, 0};
  CHECK(af_metrics_compute(&set, 2, logits, badgold, 4, &m) == AF_ERR_ARG);
  af_metric_set reg = {2, {AF_METRIC_PEARSON, AF_METRIC_SPEARMAN}, AF_METRIC_PEARSON};
  float x[] = {1, 2, 3, 4, 5}, y[] = {2, 4, 5, 4, 5};
  CHECK_OK(af_metrics_compute(&reg, 1, x, y, 5, &m));
  near("regression primary pearson", m.primary_value, 6.0 / sqrt(60.0));
  near("regression spearman", m.value[AF_METRIC_SPEARMAN], 7.0 / sqrt(90.0));
  CHECK(af_metrics_compute(&set, 1, x, y, 5, &m) == AF_ERR_ARG);  /* f1 on regression */
  int pred[] = {1, 0, 0, 0};
  CHECK_OK(af_metrics_compute_classes(&set, 2, pred, gold, 4, &m));
  near("classes accuracy", m.value[AF_METRIC_ACCURACY], 0.75);
  CHECK(af_metric_from_name("macro_f1") == AF_METRIC_MACRO_F1 && af_metric_from_name("nope") == -1);
}

int main(void) {
  test_binary();
  test_multiclass();
  test_correlations();
  test_compute();
  return af_test_done("test_metrics");
}
