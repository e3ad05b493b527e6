/* The activation cache's disk tier (internal to core/cache*.c): one HDF5 file holding a
 * chunked, extendible [rows, C] dataset of the storage dtype, plus header attributes. Every
 * call takes af_h5_lock and checks that the file was neither truncated nor deleted under
 * it; every failure is a status with a one-line message. Layout: docs/cache.md. */
#ifndef AF_CACHE_DISK_H
#define AF_CACHE_DISK_H
#include <stdint.h>
#include "core/run/cache.h"

#define AF_CACHE_FORMAT "autofreeze-activation-cache"
#define AF_CACHE_FORMAT_VERSION 1

typedef struct af_cache_file af_cache_file;

/* Create dir/afcache-<hash>-<pid>.h5 fresh (see af_act_cache_open for existing files). */
af_status af_cache_file_create(const char *dir, const char *run_key, int hidden, af_cache_dtype dtype, int compress,
                               af_cache_file **out);
/* rows [row, row+len) <-> data [len, C] in the storage dtype. Writes past the end extend
 * the dataset (in steps, so appends do not resize at every entry). */
af_status af_cache_file_write(af_cache_file *f, uint64_t row, int len, const void *data);
af_status af_cache_file_read(af_cache_file *f, uint64_t row, int len, void *data);
af_status af_cache_file_flush(af_cache_file *f);
long long af_cache_file_size(const af_cache_file *f);  /* bytes on disk now, -1 unknown */
const char *af_cache_file_path(const af_cache_file *f);
/* Close (errors ignored: the file may be broken) and unlink it. NULL-safe. */
void af_cache_file_close(af_cache_file *f);

#endif
