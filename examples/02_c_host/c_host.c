/*
 * Example 02: a C host using atmocorrect.h. A 1-D field with one halo point each side,
 * decomposed over the ranks; the interior is registered in place, one step is taken, and every
 * rank prints its interior and the status of an intentionally wrong call.
 *
 * usage: mpirun -np N c_host CKPT_DIR
 */
#include <atmocorrect.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define NLOCAL 4

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: c_host CKPT_DIR\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  double x[NLOCAL + 2]; /* x[0] and x[NLOCAL + 1] are halo points */
  for (int i = 0; i < NLOCAL + 2; ++i) x[i] = (i == 0 || i == NLOCAL + 1) ? -1.0 : 10.0 * rank + i;

  atmocorrect_t ac;
  char msg[1024];
  int rc = atmocorrect_init(&ac, argv[1], MPI_COMM_WORLD, NULL, msg, sizeof msg);
  if (rc) { printf("rank %d init failed (%d): %s\n", rank, rc, msg); MPI_Finalize(); return 1; }
  int64_t gshape[1] = {(int64_t)NLOCAL * size}, offset[1] = {(int64_t)NLOCAL * rank};
  rc = atmocorrect_set_grid(&ac, 1, gshape, offset, NULL, 0, NULL, 0, NULL, 0, msg, sizeof msg);
  int64_t shape[1] = {NLOCAL}, strides[1] = {sizeof(double)};
  if (!rc) rc = atmocorrect_add_field(&ac, "x", &x[1], 1, shape, strides, ATMOCORRECT_REAL64, "1", msg, sizeof msg);
  if (!rc) rc = atmocorrect_step(&ac, 0.0, 2.0, msg, sizeof msg);
  if (rc) { printf("rank %d failed (%d): %s\n", rank, rc, msg); MPI_Finalize(); return 1; }
  intptr_t address = 0;
  atmocorrect_field_address(&ac, "x", &address, msg, sizeof msg);
  char line[512];
  int n = snprintf(line, sizeof line, "rank %d x:", rank);
  for (int i = 0; i < NLOCAL + 2; ++i) n += snprintf(line + n, sizeof line - n, " %.6f", x[i]);
  printf("%s inplace=%d\n", line, address == (intptr_t)&x[1]);
  fflush(stdout);
  rc = atmocorrect_step(&ac, 2.0, -1.0, msg, sizeof msg);
  printf("rank %d bad_dt status=%d msg=%s\n", rank, rc, msg);
  atmocorrect_finalize(&ac, msg, sizeof msg);
  MPI_Finalize();
  return 0;
}
