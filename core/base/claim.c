/* PATH.lock under flock: see claim.h. The lock file is removed at release while held; a run
 * that opened it before the removal finds, after locking, that the path names another file
 * (or none) and tries again, so two runs never both hold a claim. */
#include "core/base/claim.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct af_claim {
  int fd;
  char path[4096];  /* the lock file's */
};

/* What the holder wrote: "pid N on HOST since TIME", or "" when unreadable */
static void holder(int fd, char *buf, size_t cap) {
  buf[0] = 0;
  ssize_t n = pread(fd, buf, cap - 1, 0);
  if (n <= 0) {
    buf[0] = 0;
    return;
  }
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
}

af_status af_claim_take(const char *path, af_claim **out) {
  *out = NULL;
  af_claim *c = calloc(1, sizeof *c);
  if (!c) return AF_FAIL(AF_ERR_NOMEM, "out of memory (claim on %s)", path);
  if ((size_t)snprintf(c->path, sizeof c->path, "%s.lock", path) >= sizeof c->path) {
    free(c);
    return AF_FAIL(AF_ERR_ARG, "%s: path too long", path);
  }
  for (int tries = 0; tries < 100; tries++) {
    int fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      int e = errno;
      free(c);
      return AF_FAIL(AF_ERR_IO, "%s.lock: cannot create the run's lock file: %s%s", path, strerror(e),
                     e == ENOENT ? " (the results file's folder must exist)" : "");
    }
    /* a few short tries: af_claim_holder's peek holds a shared lock for microseconds */
    int locked = 0, e = 0;
    for (int peek = 0; peek < 5 && !locked; peek++) {
      locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
      e = errno;
      if (!locked && e == EWOULDBLOCK && peek < 4) nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    if (!locked) {
      char who[256];
      holder(fd, who, sizeof who);
      close(fd);
      free(c);
      if (e == EWOULDBLOCK)
        return AF_FAIL(AF_ERR_IO, "%s is being written by another run (%s); wait for it to end or choose "
                       "another output file", path, who[0] ? who : "its process holds the lock");
      return AF_FAIL(AF_ERR_IO, "%s.lock: cannot lock: %s", path, strerror(e));
    }
    struct stat a, b;  /* still the file the path names? (a releasing run removes it) */
    if (fstat(fd, &a) == 0 && stat(c->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      char host[256] = "?", when[64] = "?", line[512];
      gethostname(host, sizeof host - 1);
      time_t now = time(NULL);
      struct tm tm;
      if (gmtime_r(&now, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
      int n = snprintf(line, sizeof line, "pid %ld on %s since %s\n", (long)getpid(), host, when);
      if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n) { /* the message only: the lock holds */ }
      c->fd = fd;
      *out = c;
      return AF_OK;
    }
    close(fd);
  }
  free(c);
  return AF_FAIL(AF_ERR_IO, "%s.lock: the lock file kept changing under this run; try again", path);
}

int af_claim_holder(const char *path, char *buf, size_t cap) {
  char lock[4096];
  if (cap) buf[0] = 0;
  if ((size_t)snprintf(lock, sizeof lock, "%s.lock", path) >= sizeof lock) return 0;
  int fd = open(lock, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  if (held && cap) holder(fd, buf, cap);
  close(fd);  /* a shared lock taken here goes with it */
  return held;
}

void af_claim_release(af_claim *c) {
  if (!c) return;
  unlink(c->path);  /* while held: see the top of the file */
  close(c->fd);
  free(c);
}
