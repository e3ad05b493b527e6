/* One writer per output: a run claims its results file by an exclusive flock on PATH.lock,
 * held while it writes, so a second run (another shell, another sweep process) aimed at the
 * same file stops with a message instead of truncating the first one's file. The kernel
 * drops the lock when the process dies: a killed run leaves no stale claim. */
#ifndef AF_CLAIM_H
#define AF_CLAIM_H
#include <stddef.h>
#include "core/base/status.h"

typedef struct af_claim af_claim;

/* Claims path (writes PATH.lock: pid, host, time). AF_ERR_IO when another process holds
 * it, with "is being written by another run (pid N on HOST since TIME)" in the message. */
af_status af_claim_take(const char *path, af_claim **out);
/* Who holds path's claim now: 1 with "pid N on HOST since TIME" in buf, 0 when nobody does
 * (no lock file, or one a dead process left). Takes nothing. */
int af_claim_holder(const char *path, char *buf, size_t cap);
/* Removes PATH.lock and drops the claim; NULL is fine. */
void af_claim_release(af_claim *c);
#endif
