/*
 * The C API (atmocorrect.h). Each call holds the host's floating-point environment, takes the
 * GIL, calls the matching function of atmocorrect._bridge, and turns its (status, message)
 * into a return code and errmsg. Under backend "aot" (atmocorrect_backend.c) step and
 * get_increment run in libatmocorrect_aot.so instead, without Python. No call exits the
 * process; atmocorrect_abort is the host's (or the Fortran module's, when stat is absent)
 * explicit choice.
 */
#include <stdio.h>
#include <string.h>

#include "atmocorrect_internal.h"

#define ENTER()                                    \
  ac_fpe_state fpe__;                              \
  ac_fpe_hold(&fpe__);                             \
  PyGILState_STATE gil__ = PyGILState_Ensure()

#define LEAVE()                  \
  PyGILState_Release(gil__);     \
  ac_fpe_restore(&fpe__)

static int check_handle(const atmocorrect_t *ac, const char *where, char *errmsg, size_t errlen) {
  if (ac == NULL || ac->handle <= 0 || !Py_IsInitialized()) {
    ac_set_error(errmsg, errlen, "%s: the corrector is not initialised (call atmocorrect_init first)", where);
    return ATMOCORRECT_EUSAGE;
  }
  return 0;
}

int atmocorrect_init(atmocorrect_t *ac, const char *checkpoint_dir, MPI_Comm comm, const char *mode,
                     char *errmsg, size_t errlen) {
  if (ac == NULL || checkpoint_dir == NULL) {
    ac_set_error(errmsg, errlen, "atmocorrect_init: ac and checkpoint_dir must not be NULL");
    return ATMOCORRECT_EUSAGE;
  }
  ac->handle = 0;
  ac->comm = MPI_Comm_c2f(comm);
  ac_fpe_state fpe;
  ac_fpe_hold(&fpe);
  int rc = ac_python_start(errmsg, errlen);
  ac_fpe_restore(&fpe);
  if (rc != 0) return rc;
  long long handle = 0;
  ENTER();
  PyObject *args = Py_BuildValue("(sLs)", checkpoint_dir, (long long)ac->comm, mode ? mode : "");
  rc = ac_call("atmocorrect_init", "init", args, &handle, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  if (rc != 0) return rc;
  ac->handle = (int)handle;
  /* backend "aot": load libatmocorrect_aot.so and the package now, so a problem shows here */
  ac_fpe_hold(&fpe);
  rc = ac_backend_init(ac, errmsg, errlen);
  ac_fpe_restore(&fpe);
  if (rc != 0) {
    char ignored[256];
    ENTER();
    PyObject *fargs = Py_BuildValue("(i)", ac->handle);
    ac_call("atmocorrect_init", "finalize", fargs, NULL, ignored, sizeof ignored);
    Py_XDECREF(fargs);
    LEAVE();
    ac->handle = 0;
  }
  return rc;
}

static PyObject *optional_coordinate(const double *values, int64_t n) {
  if (values == NULL || n <= 0) Py_RETURN_NONE;
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (int64_t i = 0; i < n; ++i) PyList_SET_ITEM(list, (Py_ssize_t)i, PyFloat_FromDouble(values[i]));
  return list;
}

int atmocorrect_set_grid(atmocorrect_t *ac, int ndim, const int64_t *global_shape,
                         const int64_t *local_offset, const double *lon, int64_t nlon,
                         const double *lat, int64_t nlat, const double *levels, int64_t nlev,
                         char *errmsg, size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_set_grid", errmsg, errlen);
  if (rc) return rc;
  if (ndim < 1 || ndim > 3 || global_shape == NULL || local_offset == NULL) {
    ac_set_error(errmsg, errlen, "atmocorrect_set_grid: need 1 to 3 dimensions, got %d", ndim);
    return ATMOCORRECT_EUSAGE;
  }
  ENTER();
  PyObject *args = Py_BuildValue("(iNNNNN)", ac->handle, ac_int_tuple(ndim, global_shape),
                                 ac_int_tuple(ndim, local_offset), optional_coordinate(lon, nlon),
                                 optional_coordinate(lat, nlat), optional_coordinate(levels, nlev));
  rc = ac_call("atmocorrect_set_grid", "set_grid", args, NULL, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  ac_backend_invalidate(ac);
  return rc;
}

static int check_array(const char *where, const char *name, const void *data, int ndim,
                       int itemsize, char *errmsg, size_t errlen) {
  if (name == NULL || name[0] == '\0') {
    ac_set_error(errmsg, errlen, "%s: the field name is empty", where);
    return ATMOCORRECT_EUSAGE;
  }
  if (ndim < 1 || ndim > 3) {
    ac_set_error(errmsg, errlen, "%s('%s'): arrays of rank 1 to 3 are supported, got rank %d", where, name, ndim);
    return ATMOCORRECT_EFIELD;
  }
  if (itemsize != ATMOCORRECT_REAL32 && itemsize != ATMOCORRECT_REAL64) {
    ac_set_error(errmsg, errlen, "%s('%s'): elements of %d bytes are not real32 or real64", where, name, itemsize);
    return ATMOCORRECT_EFIELD;
  }
  if (data == NULL) {
    ac_set_error(errmsg, errlen, "%s('%s'): the array is empty or not allocated", where, name);
    return ATMOCORRECT_EFIELD;
  }
  return 0;
}

int atmocorrect_add_field(atmocorrect_t *ac, const char *name, void *data, int ndim,
                          const int64_t *shape, const int64_t *byte_strides, int itemsize,
                          const char *units, char *errmsg, size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_add_field", errmsg, errlen);
  if (rc) return rc;
  /* Even a locally invalid array must enter the collective Python call, or other ranks would
   * wait forever; it is passed as a zero-size placeholder and refused there. */
  char local_err[512] = "";
  int local_rc = check_array("atmocorrect_add_field", name, data, ndim, itemsize, local_err, sizeof local_err);
  ENTER();
  PyObject *args;
  if (local_rc == 0) {
    args = Py_BuildValue("(isLNNis)", ac->handle, name, (long long)(intptr_t)data,
                         ac_int_tuple(ndim, shape), ac_int_tuple(ndim, byte_strides), itemsize,
                         units ? units : "");
    rc = ac_call("atmocorrect_add_field", "add_field", args, NULL, errmsg, errlen);
  } else {
    args = Py_BuildValue("(iss)", ac->handle, name ? name : "", local_err);
    rc = ac_call("atmocorrect_add_field", "refuse_field", args, NULL, errmsg, errlen);
    if (rc == 0) rc = local_rc;
  }
  Py_XDECREF(args);
  LEAVE();
  ac_backend_invalidate(ac);
  return rc;
}

int atmocorrect_step(atmocorrect_t *ac, double model_time, double dt, char *errmsg, size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_step", errmsg, errlen);
  if (rc) return rc;
  if (ac_backend_is_aot(ac)) return ac_backend_step(ac, model_time, dt, errmsg, errlen); /* no Python */
  ENTER();
  PyObject *args = Py_BuildValue("(idd)", ac->handle, model_time, dt);
  rc = ac_call("atmocorrect_step", "step", args, NULL, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  return rc;
}

int atmocorrect_get_increment(atmocorrect_t *ac, const char *name, void *out, int ndim,
                              const int64_t *shape, const int64_t *byte_strides, int itemsize,
                              char *errmsg, size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_get_increment", errmsg, errlen);
  if (rc) return rc;
  rc = check_array("atmocorrect_get_increment", name, out, ndim, itemsize, errmsg, errlen);
  if (rc) return rc;
  if (ac_backend_get_increment(ac, name, out, ndim, shape, byte_strides, itemsize, &rc, errmsg, errlen))
    return rc; /* the aot backend keeps the increments (after its first step) */
  ENTER();
  PyObject *args = Py_BuildValue("(isLNNi)", ac->handle, name, (long long)(intptr_t)out,
                                 ac_int_tuple(ndim, shape), ac_int_tuple(ndim, byte_strides), itemsize);
  rc = ac_call("atmocorrect_get_increment", "get_increment", args, NULL, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  return rc;
}

int atmocorrect_field_address(atmocorrect_t *ac, const char *name, intptr_t *address, char *errmsg,
                              size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_field_address", errmsg, errlen);
  if (rc) return rc;
  long long value = 0;
  ENTER();
  PyObject *args = Py_BuildValue("(is)", ac->handle, name ? name : "");
  rc = ac_call("atmocorrect_field_address", "field_address", args, &value, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  if (rc == 0 && address) *address = (intptr_t)value;
  return rc;
}

int atmocorrect_finalize(atmocorrect_t *ac, char *errmsg, size_t errlen) {
  int rc = check_handle(ac, "atmocorrect_finalize", errmsg, errlen);
  if (rc) return rc;
  ac_backend_finalize(ac);
  ENTER();
  PyObject *args = Py_BuildValue("(i)", ac->handle);
  rc = ac_call("atmocorrect_finalize", "finalize", args, NULL, errmsg, errlen);
  Py_XDECREF(args);
  LEAVE();
  if (rc == 0) ac->handle = 0;
  return rc;
}

void atmocorrect_abort(const atmocorrect_t *ac, int status, const char *message) {
  int initialized = 0, finalized = 0, rank = -1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  MPI_Comm comm = MPI_COMM_WORLD;
  if (initialized && !finalized) {
    if (ac != NULL) comm = MPI_Comm_f2c(ac->comm);
    if (comm == MPI_COMM_NULL) comm = MPI_COMM_WORLD;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
  fprintf(stderr, "[atmocorrect rank %d] error %d: %s\n", rank, status,
          message && message[0] ? message : "(no message)");
  fflush(stderr);
  if (!initialized || finalized) {
    int argc = 0;
    char **argv = NULL;
    if (!initialized) MPI_Init(&argc, &argv);
    comm = MPI_COMM_WORLD;
  }
  MPI_Abort(comm, status != 0 ? status : 1);
}
