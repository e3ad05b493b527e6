/* libFuzzer target for the safetensors header parser: af_st_open_memory is the same
 * validation af_st_open runs on a mapped file. Anything it accepts must be safe to read:
 * every tensor's bytes are touched and, for float dtypes, converted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  af_set_quiet(1);
  af_st *st = NULL;
  af_clear_error();
  if (af_st_open_memory(data, size, "fuzz.safetensors", &st) != AF_OK) {
    if (st) abort();                     /* a failed open must not hand out a handle */
    if (!af_last_error()[0]) abort();    /* and must say why */
    return 0;
  }
  volatile uint8_t sink = 0;
  for (int i = 0; i < af_st_count(st); i++) {
    const af_st_tensor *t = af_st_get(st, i);
    if (af_st_find(st, t->name) != t) abort();
    if (t->nbytes != t->numel * af_st_dtype_size(t->dtype) || t->end - t->begin != t->nbytes) abort();
    const uint8_t *p = t->data;
    for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];  /* ASan checks the range */
    if (t->numel <= (1u << 20)) {
      float *dst = malloc(t->numel * sizeof(float) + 1);
      if (dst) {
        af_status s = af_st_read_f32(st, t, dst);
        if (s != AF_OK && (t->dtype == AF_ST_F32 || t->dtype == AF_ST_F16 || t->dtype == AF_ST_BF16)) abort();
        free(dst);
      }
    }
  }
  (void)af_st_metadata(st, "format");
  (void)sink;
  af_st_close(st);
  return 0;
}
