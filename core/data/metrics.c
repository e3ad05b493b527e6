/* Metrics (see metrics.h). Sums are in double; the confusion matrix is the common ground of
 * accuracy, F1, macro-F1 and MCC. Spearman ranks with the mean rank of each tie group, which
 * is what scipy.stats.spearmanr does, so the numbers match the GLUE reference scripts. */
#define _GNU_SOURCE  /* qsort_r */
#include "core/data/metrics.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *names[AF_METRIC_COUNT] = {"accuracy", "f1", "mcc", "pearson", "spearman", "macro_f1"};

const char *af_metric_name(af_metric m) {
  return (m >= 0 && m < AF_METRIC_COUNT) ? names[m] : "unknown";
}

int af_metric_from_name(const char *name) {
  for (int i = 0; i < AF_METRIC_COUNT; i++)
    if (!strcmp(name, names[i])) return i;
  return -1;
}

double af_metric_accuracy(const int *pred, const int *gold, size_t n) {
  if (!n) return 0;
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += pred[i] == gold[i];
  return (double)c / (double)n;
}

static double f1_of(double tp, double fp, double fn) {
  double d = 2 * tp + fp + fn;
  return d > 0 ? 2 * tp / d : 0;
}

double af_metric_f1(const int *pred, const int *gold, size_t n, int positive) {
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < n; i++) {
    int p = pred[i] == positive, g = gold[i] == positive;
    tp += p && g;
    fp += p && !g;
    fn += !p && g;
  }
  return f1_of(tp, fp, fn);
}

/* Confusion counts: cm[g*K + p]. Labels outside 0..K-1 are ignored by the callers' contract. */
static double *confusion(const int *pred, const int *gold, size_t n, int K) {
  double *cm = calloc((size_t)K * (size_t)K, sizeof *cm);
  if (!cm) return NULL;
  for (size_t i = 0; i < n; i++)
    if (gold[i] >= 0 && gold[i] < K && pred[i] >= 0 && pred[i] < K) cm[(size_t)gold[i] * (size_t)K + (size_t)pred[i]] += 1;
  return cm;
}

double af_metric_mcc(const int *pred, const int *gold, size_t n, int K) {
  if (K < 2) K = 2;
  double *cm = confusion(pred, gold, n, K);
  if (!cm) return NAN;
  /* Gorodkin's R_K: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)); equals the
   * binary MCC for K = 2 (sklearn's matthews_corrcoef). */
  double c = 0, s = 0, pt = 0, pp = 0, tt = 0;
  for (int k = 0; k < K; k++) {
    double tk = 0, pk = 0;
    for (int j = 0; j < K; j++) {
      tk += cm[k * K + j];
      pk += cm[j * K + k];
    }
    c += cm[k * K + k];
    s += tk;
    pt += pk * tk;
    pp += pk * pk;
    tt += tk * tk;
  }
  free(cm);
  double den = sqrt((s * s - pp) * (s * s - tt));
  return den > 0 ? (c * s - pt) / den : 0;
}

double af_metric_macro_f1(const int *pred, const int *gold, size_t n, int K) {
  double *cm = confusion(pred, gold, n, K);
  if (!cm) return NAN;
  double sum = 0;
  int used = 0;
  for (int k = 0; k < K; k++) {
    double tp = cm[k * K + k], fp = 0, fn = 0;
    for (int j = 0; j < K; j++) {
      if (j == k) continue;
      fp += cm[j * K + k];
      fn += cm[k * K + j];
    }
    if (tp + fp + fn == 0) continue;  /* class absent from gold and predictions */
    sum += f1_of(tp, fp, fn);
    used++;
  }
  free(cm);
  return used ? sum / used : 0;
}

static double pearson_d(const double *x, const double *y, size_t n) {
  if (n < 2) return 0;
  double mx = 0, my = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i])) return NAN;
    mx += x[i];
    my += y[i];
  }
  mx /= (double)n;
  my /= (double)n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; i++) {
    double a = x[i] - mx, b = y[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (sxx <= 0 || syy <= 0) return 0;
  double r = sxy / sqrt(sxx * syy);
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

double af_metric_pearson(const float *x, const float *y, size_t n) {
  double *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
  double r = NAN;
  if (a && b) {
    for (size_t i = 0; i < n; i++) { a[i] = x[i]; b[i] = y[i]; }
    r = pearson_d(a, b, n);
  }
  free(a);
  free(b);
  return r;
}

static int rank_cmp(const void *pa, const void *pb, void *ctx) {
  const float *v = ctx;
  float a = v[*(const size_t *)pa], b = v[*(const size_t *)pb];
  if (a < b) return -1;
  if (a > b) return 1;
  size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
  return ia < ib ? -1 : ia > ib;
}

/* Average ranks (1-based) of v into r. */
static int ranks(const float *v, size_t n, double *r) {
  size_t *idx = malloc((n ? n : 1) * sizeof *idx);
  if (!idx) return -1;
  for (size_t i = 0; i < n; i++) idx[i] = i;
  qsort_r(idx, n, sizeof *idx, rank_cmp, (void *)v);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && v[idx[j]] == v[idx[i]]) j++;
    double avg = 0.5 * (double)(i + 1 + j);  /* mean of ranks i+1..j */
    for (size_t k = i; k < j; k++) r[idx[k]] = avg;
    i = j;
  }
  free(idx);
  return 0;
}

double af_metric_spearman(const float *x, const float *y, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(y[i])) return NAN;
  double *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
  double r = NAN;
  if (a && b && ranks(x, n, a) == 0 && ranks(y, n, b) == 0) r = pearson_d(a, b, n);
  free(a);
  free(b);
  return r;
}

static af_status fill_classes(const af_metric_set *set, int K, const int *pred, const float *targets,
                              size_t n, af_metrics *out) {
  int *gold = malloc((n ? n : 1) * sizeof *gold);
  if (!gold) return AF_FAIL(AF_ERR_NOMEM, "out of memory scoring %zu examples", n);
  for (size_t i = 0; i < n; i++) {
    float t = targets[i];
    if (!(t >= 0 && t < K) || t != (float)(int)t) {
      free(gold);
      return AF_FAIL(AF_ERR_ARG, "example %zu: expected a class label 0..%d, found %g", i, K - 1, (double)t);
    }
    gold[i] = (int)t;
  }
  for (int j = 0; j < set->n; j++) {
    af_metric m = set->list[j];
    double v = NAN;
    switch (m) {
    case AF_METRIC_ACCURACY: v = af_metric_accuracy(pred, gold, n); break;
    case AF_METRIC_F1: v = af_metric_f1(pred, gold, n, 1); break;
    case AF_METRIC_MCC: v = af_metric_mcc(pred, gold, n, K); break;
    case AF_METRIC_MACRO_F1: v = af_metric_macro_f1(pred, gold, n, K); break;
    default:
      free(gold);
      return AF_FAIL(AF_ERR_ARG, "metric %s does not apply to a classification task", af_metric_name(m));
    }
    out->value[m] = v;
    out->have[m] = 1;
  }
  free(gold);
  return AF_OK;
}

static void init_out(const af_metric_set *set, size_t n, af_metrics *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < AF_METRIC_COUNT; i++) out->value[i] = NAN;
  out->primary = set->primary;
  out->n = n;
}

static void finish_out(af_metrics *out) {
  out->primary_value = out->have[out->primary] ? out->value[out->primary] : NAN;
}

af_status af_metrics_compute_classes(const af_metric_set *set, int num_labels, const int *pred,
                                     const float *targets, size_t n, af_metrics *out) {
  init_out(set, n, out);
  if (num_labels < 2) return AF_FAIL(AF_ERR_ARG, "class predictions given for a regression task");
  AF_TRY(fill_classes(set, num_labels, pred, targets, n, out));
  finish_out(out);
  return AF_OK;
}

af_status af_metrics_compute(const af_metric_set *set, int num_labels, const float *scores,
                             const float *targets, size_t n, af_metrics *out) {
  init_out(set, n, out);
  if (num_labels >= 2) {
    int *pred = malloc((n ? n : 1) * sizeof *pred);
    if (!pred) return AF_FAIL(AF_ERR_NOMEM, "out of memory scoring %zu examples", n);
    for (size_t i = 0; i < n; i++) {
      const float *s = scores + i * (size_t)num_labels;
      int best = 0;
      for (int k = 1; k < num_labels; k++)
        if (s[k] > s[best]) best = k;
      pred[i] = best;
    }
    af_status st = fill_classes(set, num_labels, pred, targets, n, out);
    free(pred);
    AF_TRY(st);
  } else {
    for (int j = 0; j < set->n; j++) {
      af_metric m = set->list[j];
      if (m == AF_METRIC_PEARSON) out->value[m] = af_metric_pearson(scores, targets, n);
      else if (m == AF_METRIC_SPEARMAN) out->value[m] = af_metric_spearman(scores, targets, n);
      else return AF_FAIL(AF_ERR_ARG, "metric %s does not apply to a regression task", af_metric_name(m));
      out->have[m] = 1;
    }
  }
  finish_out(out);
  return AF_OK;
}

void af_metrics_format(const af_metric_set *set, const af_metrics *m, char *buf, size_t cap) {
  size_t used = 0;
  if (cap) buf[0] = 0;
  for (int j = 0; j < set->n && used < cap; j++) {
    af_metric k = set->list[j];
    int w = snprintf(buf + used, cap - used, "%s%s=%.4f%s", j ? " " : "", af_metric_name(k), m->value[k],
                     k == set->primary ? "*" : "");
    if (w < 0) break;
    used += (size_t)w;
  }
}
