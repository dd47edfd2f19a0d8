/*
 * Adaptors for the Fortran module: Fortran passes arrays as standard C descriptors
 * (ISO_Fortran_binding.h, Fortran 2018), so a host can register any real32/real64 array or
 * section of rank 1 to 3, halos excluded, without a copy: the descriptor carries the address of
 * the first element and the byte stride of every dimension.
 */
#include <ISO_Fortran_binding.h>
#include <string.h>

#include "atmocorrect_internal.h"

static int describe(const CFI_cdesc_t *a, void **data, int *ndim, int64_t *shape, int64_t *strides,
                    int *itemsize) {
  *data = a->base_addr;
  *ndim = (int)a->rank;
  *itemsize = (int)a->elem_len;
  for (int i = 0; i < a->rank && i < 3; ++i) {
    shape[i] = (int64_t)a->dim[i].extent;
    strides[i] = (int64_t)a->dim[i].sm;
  }
  for (int i = 0; i < a->rank && i < 3; ++i)
    if (shape[i] == 0) *data = NULL; /* a zero-size array has no element to point at */
  return 0;
}

int atmocorrect_f_init(atmocorrect_t *ac, const char *checkpoint_dir, const MPI_Fint *comm,
                       const char *mode, char *errmsg, size_t errlen) {
  MPI_Comm c = MPI_Comm_f2c(*comm);
  return atmocorrect_init(ac, checkpoint_dir, c, mode, errmsg, errlen);
}

int atmocorrect_f_add_field(atmocorrect_t *ac, const char *name, CFI_cdesc_t *array,
                            const char *units, char *errmsg, size_t errlen) {
  void *data;
  int ndim, itemsize;
  int64_t shape[3] = {0, 0, 0}, strides[3] = {0, 0, 0};
  describe(array, &data, &ndim, shape, strides, &itemsize);
  return atmocorrect_add_field(ac, name, data, ndim, shape, strides, itemsize, units, errmsg, errlen);
}

int atmocorrect_f_get_increment(atmocorrect_t *ac, const char *name, CFI_cdesc_t *array,
                                char *errmsg, size_t errlen) {
  void *data;
  int ndim, itemsize;
  int64_t shape[3] = {0, 0, 0}, strides[3] = {0, 0, 0};
  describe(array, &data, &ndim, shape, strides, &itemsize);
  return atmocorrect_get_increment(ac, name, data, ndim, shape, strides, itemsize, errmsg, errlen);
}

int atmocorrect_f_field_address(atmocorrect_t *ac, const char *name, int64_t *address,
                                char *errmsg, size_t errlen) {
  intptr_t a = 0;
  int rc = atmocorrect_field_address(ac, name, &a, errmsg, errlen);
  *address = (int64_t)a;
  return rc;
}
