/* Reader and writer for the safetensors format (Hugging Face model weights): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte
 * range, then the raw little-endian data. The reader memory-maps the file read-only and
 * validates the whole header before handing out a single pointer, so a corrupt or hostile
 * file gives one clear error and never an out-of-bounds read. */
#ifndef AF_SAFETENSORS_H
#define AF_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "core/base/status.h"

/* Header cap, as in the reference implementation. */
#define AF_ST_MAX_HEADER ((uint64_t)100000000)
#define AF_ST_MAX_DIMS 8

typedef enum {
  AF_ST_F32 = 0, AF_ST_F16, AF_ST_BF16,            /* loadable as float */
  AF_ST_F64, AF_ST_I64, AF_ST_I32, AF_ST_I16, AF_ST_I8, AF_ST_U64, AF_ST_U32, AF_ST_U16, AF_ST_U8,
  AF_ST_BOOL, AF_ST_F8_E4M3, AF_ST_F8_E5M2,       /* listed, not loadable as float */
  AF_ST_DTYPE_COUNT
} af_st_dtype;

typedef struct {
  const char *name;
  af_st_dtype dtype;
  int ndim;                        /* 0 for a scalar */
  int64_t shape[AF_ST_MAX_DIMS];
  size_t numel;                    /* product of shape (1 for a scalar) */
  size_t nbytes;                   /* numel * dtype size */
  uint64_t begin, end;             /* data_offsets, relative to the data area */
  const void *data;                /* points into the mapping; may be unaligned */
} af_st_tensor;

typedef struct af_st af_st;

/* Map and validate path. Errors (AF_ERR_IO, AF_ERR_FORMAT) name the file. */
af_status af_st_open(const char *path, af_st **st);
/* Validate an in-memory image (the fuzz entry point; af_st_open uses it too). buf is
 * borrowed, not copied: it must outlive the handle. name is used in error messages. */
af_status af_st_open_memory(const void *buf, size_t len, const char *name, af_st **st);
void af_st_close(af_st *st);  /* NULL is fine */

int af_st_count(const af_st *st);
const af_st_tensor *af_st_get(const af_st *st, int i);         /* in file order of data offsets */
const af_st_tensor *af_st_find(const af_st *st, const char *name);  /* NULL when absent */
const char *af_st_name(const af_st *st);                        /* the path or name given at open */
/* Value of a __metadata__ entry (string), NULL when absent. */
const char *af_st_metadata(const af_st *st, const char *key);

const char *af_st_dtype_name(af_st_dtype d);
size_t af_st_dtype_size(af_st_dtype d);

/* Copy t into dst[t->numel] as float, converting F16/BF16. Other dtypes: AF_ERR_UNSUPPORTED. */
af_status af_st_read_f32(const af_st *st, const af_st_tensor *t, float *dst);

/* fp16/bf16 conversions: core/base/half.h. */

/* One tensor to write: float data stored as dtype (F32, F16 or BF16). */
typedef struct {
  const char *name;
  af_st_dtype dtype;
  int ndim;
  int64_t shape[AF_ST_MAX_DIMS];
  const float *data;  /* numel floats */
} af_st_write_tensor;

/* Write n tensors to path (through path.tmp and a rename, so a reader never sees half a
 * file). metadata_json is NULL or a JSON object of string values stored as __metadata__.
 * The header is padded with spaces to a multiple of 8 bytes, as the reference writer does,
 * and tensors are stored widest dtype first so F32 data stays 4-byte aligned. */
af_status af_st_write(const char *path, const af_st_write_tensor *tensors, int n, const char *metadata_json);
/* The same written to exactly `path` (flushed and fsynced), with no rename: for a caller
 * that renames it into place itself (the run checkpoint writer). */
af_status af_st_write_file(const char *path, const af_st_write_tensor *tensors, int n, const char *metadata_json);

#endif
