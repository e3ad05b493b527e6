/* Evaluation metrics for classification and regression, and the small table a task uses
 * to say which apply and which one is primary (the number a run reports and selects on).
 * Degenerate inputs never produce NaN from a well-defined input: MCC, F1 and the
 * correlations are 0 when a denominator is 0 (constant predictions or constant gold);
 * they are NaN only when an input value itself is NaN/Inf (a diverged model). */
#ifndef AF_METRICS_H
#define AF_METRICS_H
#include <stddef.h>
#include "core/base/status.h"

typedef enum {
  AF_METRIC_ACCURACY = 0,
  AF_METRIC_F1,        /* binary F1 of class 1 (MRPC, QQP) */
  AF_METRIC_MCC,       /* Matthews correlation; the multi-class form (Gorodkin) for K > 2 */
  AF_METRIC_PEARSON,
  AF_METRIC_SPEARMAN,  /* Pearson of average ranks (ties share the mean rank) */
  AF_METRIC_MACRO_F1,  /* unweighted mean of per-class F1 over classes present in gold or pred */
  AF_METRIC_COUNT
} af_metric;

const char *af_metric_name(af_metric m);  /* "accuracy", "f1", "mcc", "pearson", "spearman", "macro_f1" */
/* Name to metric; -1 when unknown. */
int af_metric_from_name(const char *name);

/* Class metrics on integer predictions and gold labels (0..K-1), n examples. n = 0 gives 0. */
double af_metric_accuracy(const int *pred, const int *gold, size_t n);
double af_metric_f1(const int *pred, const int *gold, size_t n, int positive);
double af_metric_mcc(const int *pred, const int *gold, size_t n, int num_classes);
double af_metric_macro_f1(const int *pred, const int *gold, size_t n, int num_classes);
/* Correlations of two real vectors (computed in double). */
double af_metric_pearson(const float *x, const float *y, size_t n);
double af_metric_spearman(const float *x, const float *y, size_t n);

/* Which metrics a task reports, in order, and its primary one. */
typedef struct {
  int n;
  af_metric list[AF_METRIC_COUNT];
  af_metric primary;
} af_metric_set;

/* Values of one evaluation: value[m] is valid when have[m]. */
typedef struct {
  double value[AF_METRIC_COUNT];
  int have[AF_METRIC_COUNT];
  af_metric primary;
  double primary_value;
  size_t n;               /* examples scored */
} af_metrics;

/* Score predictions against targets.
 * Classification (num_labels >= 2): scores is [n, num_labels] logits (or probabilities);
 *   the prediction is the argmax (the first on ties); targets[i] is the class as float.
 * Regression (num_labels == 1): scores is [n] predictions, targets [n] gold values.
 * A target outside 0..num_labels-1 is AF_ERR_ARG. */
af_status af_metrics_compute(const af_metric_set *set, int num_labels, const float *scores,
                             const float *targets, size_t n, af_metrics *out);
/* Same for already-decided class predictions pred[n]. */
af_status af_metrics_compute_classes(const af_metric_set *set, int num_labels, const int *pred,
                                     const float *targets, size_t n, af_metrics *out);
/* "accuracy=0.8412 f1=0.8890*" (primary starred) into buf. */
void af_metrics_format(const af_metric_set *set, const af_metrics *m, char *buf, size_t cap);

#endif
