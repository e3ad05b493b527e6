/* File-system helpers the engine and the front-ends share: mkdir -p, "is it a folder", the
 * folder of a path, and where the running executable lives (to find plots/ and lua/ next
 * to an installed binary). One copy here instead of one per file that needed them. */
#ifndef AF_FSUTIL_H
#define AF_FSUTIL_H
#include <stddef.h>
#include "core/base/status.h"

/* mkdir -p (mode 0777 less the umask). "" is the current folder: AF_OK. On failure AF_ERR_IO
 * naming the folder that could not be made: "DIR: cannot create the folder: <strerror>" or
 * "DIR: exists and is not a folder". */
af_status af_mkdirs(const char *dir);

/* 0 when path is a folder; else an errno value: stat's, or ENOTDIR when path exists but is
 * something else. For messages that say why a folder is not there. */
int af_dir_errno(const char *path);
/* 1 when path is a folder (following links), else 0. */
int af_is_dir(const char *path);
/* 1 when something exists at path (following links), else 0. */
int af_path_exists(const char *path);

/* The folder of a path, like POSIX dirname without touching its argument: "a/b.h5" -> "a",
 * "b.h5" -> ".", "/x" -> "/", "a/b/" -> "a". Cut to cap - 1 bytes. */
void af_path_dir(const char *path, char *out, size_t cap);

/* The running executable (/proc/self/exe), "" when unknown; computed once. */
const char *af_exe_path(void);
/* Its folder, "" when unknown. */
void af_exe_dir(char *out, size_t cap);

#endif
