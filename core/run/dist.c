/* The collectives of dist.h over MPI (MPI_COMM_WORLD), or their single-process identities
 * when autofreeze was built without MPI or started without a launcher. The only file of the
 * engine that includes mpi.h. */
#include "core/run/dist.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int d_rank = 0, d_size = 1, d_local = 0, d_active = 0;

#ifdef AF_HAVE_MPI
#include <mpi.h>

/* the launcher's word for this process's place on its machine; -1 when it says nothing */
static int local_rank_from_env(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                                     "MV2_COMM_WORLD_LOCAL_RANK", NULL};
  for (int i = 0; vars[i]; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v) return atoi(v);
  }
  return -1;
}

static char d_lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";

/* pending non-blocking collectives (af_dist_iallreduce_sum_f32) */
enum { MAX_REQ = 64 };
static MPI_Request d_req[MAX_REQ];
static int d_nreq = 0;

/* environment variables an MPI launcher sets in the processes it starts */
static int launched_by_mpi(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK",
                                     "MV2_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", NULL};
  const char *force = getenv("AF_MPI");
  if (force && *force) return strcmp(force, "0") != 0;
  for (int i = 0; vars[i]; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

static void finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

static af_status mpi_status(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return AF_OK;
  char msg[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return AF_FAIL(AF_ERR_BACKEND, "MPI %s failed: %s", what, msg);
}

af_status af_dist_init(void) {
  if (d_active || !launched_by_mpi()) return AF_OK;
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    AF_TRY(mpi_status(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
    atexit(finalize);
  }
  /* errors come back as codes (converted at the call), not as MPI's own abort */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &d_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &d_size);
  d_local = local_rank_from_env();
  if (d_local < 0) {  /* the ranks sharing this machine's memory, in rank order */
    MPI_Comm node;
    d_local = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d_rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      MPI_Comm_rank(node, &d_local);
      MPI_Comm_free(&node);
    }
  }
  int len = 0;
  MPI_Get_library_version(d_lib, &len);
  d_lib[strcspn(d_lib, ",\n")] = 0;  /* "Open MPI v4.1.4" */
  d_active = 1;
  return AF_OK;
}

int af_dist_built(void) { return 1; }
const char *af_dist_library(void) { return d_active ? d_lib : "none"; }

/* MPI counts are int: a large buffer goes in pieces of at most 2^30 elements */
#define PIECE ((size_t)1 << 30)

af_status af_dist_allreduce_sum_f32(float *x, size_t n) {
  for (size_t i = 0; d_size > 1 && i < n; i += PIECE) {
    int c = (int)(n - i < PIECE ? n - i : PIECE);
    AF_TRY(mpi_status(MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "all-reduce"));
  }
  return AF_OK;
}

af_status af_dist_allreduce_sum_f64(double *x, size_t n) {
  for (size_t i = 0; d_size > 1 && i < n; i += PIECE) {
    int c = (int)(n - i < PIECE ? n - i : PIECE);
    AF_TRY(mpi_status(MPI_Allreduce(MPI_IN_PLACE, x + i, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "all-reduce"));
  }
  return AF_OK;
}

af_status af_dist_wait(void) {
  if (d_nreq == 0) return AF_OK;
  int rc = MPI_Waitall(d_nreq, d_req, MPI_STATUSES_IGNORE);
  d_nreq = 0;
  return mpi_status(rc, "wait for the non-blocking all-reduces");
}

af_status af_dist_iallreduce_sum_f32(float *x, size_t n) {
  for (size_t i = 0; d_size > 1 && i < n; i += PIECE) {
    int c = (int)(n - i < PIECE ? n - i : PIECE);
    if (d_nreq == MAX_REQ) AF_TRY(af_dist_wait());
    AF_TRY(mpi_status(MPI_Iallreduce(MPI_IN_PLACE, x + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &d_req[d_nreq]),
                      "non-blocking all-reduce"));
    d_nreq++;
  }
  return AF_OK;
}

af_status af_dist_progress(void) {
  int done = 0;
  if (d_nreq == 0) return AF_OK;
  AF_TRY(mpi_status(MPI_Testall(d_nreq, d_req, &done, MPI_STATUSES_IGNORE), "test of the non-blocking all-reduces"));
  if (done) d_nreq = 0;
  return AF_OK;
}

af_status af_dist_allreduce_max_int(int *x, int n) {
  if (d_size < 2) return AF_OK;
  return mpi_status(MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "all-reduce (max)");
}

af_status af_dist_bcast(void *buf, size_t bytes, int root) {
  for (size_t i = 0; d_size > 1 && i < bytes; i += PIECE) {
    int c = (int)(bytes - i < PIECE ? bytes - i : PIECE);
    AF_TRY(mpi_status(MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD), "broadcast"));
  }
  return AF_OK;
}

af_status af_dist_barrier(void) {
  if (d_size < 2) return AF_OK;
  return mpi_status(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

void af_dist_fail_all(const char *msg) {
  if (d_size < 2) return;
  fprintf(stderr, "autofreeze: rank %d of %d failed: %s; stopping all ranks\n", d_rank, d_size, msg);
  fflush(stderr);
  fflush(stdout);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1);  /* not reached */
}

#else /* single-process build */

af_status af_dist_init(void) {
  const char *force = getenv("AF_MPI");
  if (!d_active && getenv("OMPI_COMM_WORLD_SIZE") && atoi(getenv("OMPI_COMM_WORLD_SIZE")) > 1 &&
      !(force && !strcmp(force, "0")))
    af_warn("started by mpirun with %s ranks, but autofreeze was built without MPI: every rank runs the "
            "whole job alone (rebuild with libopenmpi-dev installed)", getenv("OMPI_COMM_WORLD_SIZE"));
  d_active = 1;
  return AF_OK;
}
int af_dist_built(void) { return 0; }
const char *af_dist_library(void) { return "none"; }
af_status af_dist_allreduce_sum_f32(float *x, size_t n) { (void)x; (void)n; return AF_OK; }
af_status af_dist_allreduce_sum_f64(double *x, size_t n) { (void)x; (void)n; return AF_OK; }
af_status af_dist_iallreduce_sum_f32(float *x, size_t n) { (void)x; (void)n; return AF_OK; }
af_status af_dist_progress(void) { return AF_OK; }
af_status af_dist_wait(void) { return AF_OK; }
af_status af_dist_allreduce_max_int(int *x, int n) { (void)x; (void)n; return AF_OK; }
af_status af_dist_bcast(void *buf, size_t bytes, int root) { (void)buf; (void)bytes; (void)root; return AF_OK; }
af_status af_dist_barrier(void) { return AF_OK; }
void af_dist_fail_all(const char *msg) { (void)msg; }

#endif

int af_dist_rank(void) { return d_rank; }
int af_dist_local_rank(void) { return d_local; }
int af_dist_size(void) { return d_size; }
