/* The run checkpoint writer: a checkpoint is copied from the backend into host buffers the
 * writer owns (the snapshot, on the training thread), then written by a thread of its own
 * while training goes on. At most one write is in flight: the next snapshot, the end of the
 * run and a stop first wait for it, and its error (status and message, carried across from
 * the writer thread's last-error line) is returned there. The frozen prefix of a depth is
 * copied and written only when the checkpoint folder has no prefix file of this run for
 * that depth yet (layout: train_ckpt.h). */
#ifndef AF_TRAIN_CKPT_WRITER_H
#define AF_TRAIN_CKPT_WRITER_H
#include "core/model/bert.h"
#include "core/run/train_ckpt.h"

typedef struct af_ckpt_writer af_ckpt_writer;

/* For the checkpoints of one run into dir (made here, so that a folder that cannot be made
 * fails the run before it trains). model_dir, labels and run_config are copied. */
af_status af_ckpt_writer_open(const char *dir, const af_bert *m, const char *model_dir, const char *labels,
                              const char *run_config, af_ckpt_writer **w);
/* The prefix file a resumed run's checkpoint named (st->prefix_depth, st->prefix_id): the
 * writer does not write that one again. */
void af_ckpt_writer_resumed(af_ckpt_writer *w, const af_train_state *st);
/* Waits for the write in flight, copies m (params, adam_m, adam_v from the frozen prefix of
 * st->depth on, the interval sum, and the prefix when it is not on disk yet) and st's
 * counters and prev_scores (its labels and run_config are not read: the copies made at open
 * are written), and starts writing them. Returns the error of the write waited for, if any. */
af_status af_ckpt_writer_submit(af_ckpt_writer *w, const af_bert *m, const af_train_state *st);
/* Waits for the write in flight; its status (reported once). */
af_status af_ckpt_writer_wait(af_ckpt_writer *w);
/* Checkpoints written completely so far (waited for). */
long af_ckpt_writer_count(const af_ckpt_writer *w);
/* Waits (an error is dropped: the caller failed already, or waited) and frees. NULL is fine. */
void af_ckpt_writer_close(af_ckpt_writer *w);

#endif
