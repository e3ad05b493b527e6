/* Losses of the classifier head: softmax cross-entropy (max-subtracted, probs saved for
 * backward) and squared error for regression (NL = 1). Only B rows: single-threaded.
 * A target outside [0, NL) is ignored (loss 0, gradient 0), like PyTorch's ignore_index. */
#include "kernels/cpu/cpu_backend.h"
#include <math.h>

/* losses[B], probs[B,NL], logits[B,NL], targets[B] (class index as float) */
void af_cpu_cross_entropy_forward(af_backend *be, float *losses, float *probs, const float *logits,
                                  const float *targets, int B, int NL) {
  (void)be;
  for (int b = 0; b < B; b++) {
    const float *z = logits + (size_t)b * NL;
    float *p = probs + (size_t)b * NL;
    float mx = z[0];
    for (int k = 1; k < NL; k++) mx = z[k] > mx ? z[k] : mx;
    double s = 0;
    for (int k = 0; k < NL; k++) s += exp((double)z[k] - mx);
    double lse = mx + log(s);
    for (int k = 0; k < NL; k++) p[k] = (float)exp((double)z[k] - lse);
    int t = (int)targets[b];
    losses[b] = (t >= 0 && t < NL) ? (float)(lse - z[t]) : 0.0f;
  }
}

/* dlogits[B,NL] = scale * (probs - onehot(target)) */
void af_cpu_cross_entropy_backward(af_backend *be, float *dlogits, const float *probs,
                                   const float *targets, int B, int NL, float scale) {
  (void)be;
  for (int b = 0; b < B; b++) {
    int t = (int)targets[b];
    int ok = t >= 0 && t < NL;
    for (int k = 0; k < NL; k++)
      dlogits[(size_t)b * NL + k] = ok ? scale * (probs[(size_t)b * NL + k] - (k == t ? 1.0f : 0.0f)) : 0.0f;
  }
}

/* losses[B] = (pred - target)^2 */
void af_cpu_mse_forward(af_backend *be, float *losses, const float *preds, const float *targets, int B) {
  (void)be;
  for (int b = 0; b < B; b++) {
    float d = preds[b] - targets[b];
    losses[b] = d * d;
  }
}

/* dpreds[B] = scale * 2 (pred - target) */
void af_cpu_mse_backward(af_backend *be, float *dpreds, const float *preds, const float *targets, int B,
                         float scale) {
  (void)be;
  for (int b = 0; b < B; b++) dpreds[b] = scale * 2.0f * (preds[b] - targets[b]);
}
