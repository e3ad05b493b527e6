/* File-system helpers; see fsutil.h. */
#include "core/base/fsutil.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int af_dir_errno(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int af_is_dir(const char *path) { return af_dir_errno(path) == 0; }

int af_path_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Make one level; an existing folder is fine (also one that appears meanwhile). */
static af_status mkdir_one(const char *p) {
  struct stat st;
  if (stat(p, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return AF_OK;
    return AF_FAIL(AF_ERR_IO, "%s: exists and is not a folder", p);
  }
  if (mkdir(p, 0777) == 0) return AF_OK;
  int e = errno;
  if (e == EEXIST && af_is_dir(p)) return AF_OK;
  return AF_FAIL(AF_ERR_IO, "%s: cannot create the folder: %s", p, strerror(e));
}

af_status af_mkdirs(const char *dir) {
  char buf[PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0) return AF_OK;
  if (n >= sizeof buf) return AF_FAIL(AF_ERR_IO, "%s: cannot create the folder: %s", dir, strerror(ENAMETOOLONG));
  memcpy(buf, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {  /* i = 1: the root is there */
    if (buf[i] != '/' && buf[i] != 0) continue;
    if (buf[i - 1] == '/') continue;  /* "a//b", "a/" */
    char c = buf[i];
    buf[i] = 0;
    AF_TRY(mkdir_one(buf));
    buf[i] = c;
  }
  return AF_OK;
}

void af_path_dir(const char *path, char *out, size_t cap) {
  if (cap == 0) return;
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;       /* "a/b/" -> "a/b" */
  while (n > 0 && path[n - 1] != '/') n--;       /* drop the last name */
  if (n == 0) {                                  /* no slash: the current folder */
    snprintf(out, cap, ".");
    return;
  }
  while (n > 1 && path[n - 1] == '/') n--;       /* "a//b" -> "a"; "/x" -> "/" */
  if (n >= cap) n = cap - 1;
  memcpy(out, path, n);
  out[n] = 0;
}

static char exe_path[PATH_MAX];
static pthread_once_t exe_once = PTHREAD_ONCE_INIT;

static void exe_init(void) {
  ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
  exe_path[n > 0 ? n : 0] = 0;
}

const char *af_exe_path(void) {
  pthread_once(&exe_once, exe_init);
  return exe_path;
}

void af_exe_dir(char *out, size_t cap) {
  if (cap == 0) return;
  const char *exe = af_exe_path();
  const char *slash = strrchr(exe, '/');
  size_t n = slash ? (size_t)(slash - exe) : 0;
  if (slash == exe) n = 1;  /* "/autofreeze" -> "/" */
  if (n >= cap) n = cap - 1;
  memcpy(out, exe, n);
  out[n] = 0;
}
