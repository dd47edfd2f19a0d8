/*
 * atmocorrect.h: the C API of the atmocorrect bridge (the same calls as the Fortran module).
 *
 * Every call returns a status: ATMOCORRECT_SUCCESS (0) or one of the codes below, and writes a
 * message naming the problem into errmsg (errlen bytes, NUL-terminated; errmsg may be NULL).
 * On failure the host's state is left untouched. Calls that touch the state (add_field, step)
 * are collective over the communicator given to atmocorrect_init: every rank calls them, and if
 * one rank fails, every rank returns a non-zero status from the same call.
 *
 * Registered arrays are used in place and must stay valid until atmocorrect_finalize.
 */
#ifndef ATMOCORRECT_H
#define ATMOCORRECT_H

#include <stddef.h>
#include <stdint.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ATMOCORRECT_SUCCESS 0
#define ATMOCORRECT_ECHECKPOINT 1 /* checkpoint missing, invalid or tampered with */
#define ATMOCORRECT_EFIELD 2      /* a field does not match the checkpoint */
#define ATMOCORRECT_EGRID 3       /* inconsistent grid or decomposition */
#define ATMOCORRECT_ESTATE 4      /* NaN/Inf in the host state */
#define ATMOCORRECT_EMODEL 5      /* the model (Python) raised */
#define ATMOCORRECT_EPYTHON 7     /* the embedded interpreter could not start */
#define ATMOCORRECT_EREMOTE 8     /* another rank failed in a collective call */
#define ATMOCORRECT_EUSAGE 9      /* invalid argument or call order */

#define ATMOCORRECT_REAL32 4
#define ATMOCORRECT_REAL64 8

typedef struct {
  int handle;     /* > 0 once initialised */
  MPI_Fint comm;  /* the host communicator, Fortran handle */
} atmocorrect_t;

/* mode: "apply", "diagnose", "off", or NULL/"" for the checkpoint's own run mode. */
int atmocorrect_init(atmocorrect_t *ac, const char *checkpoint_dir, MPI_Comm comm,
                     const char *mode, char *errmsg, size_t errlen);

/* global_shape and local_offset (0-based) in the host's dimension order, ndim entries each.
 * lon, lat, levels are optional coordinate vectors (NULL with n = 0). */
int atmocorrect_set_grid(atmocorrect_t *ac, int ndim, const int64_t *global_shape,
                         const int64_t *local_offset, const double *lon, int64_t nlon,
                         const double *lat, int64_t nlat, const double *levels, int64_t nlev,
                         char *errmsg, size_t errlen);

/* data: first element; shape: ndim extents (1 to 3) in the order the checkpoint names the
 * dims (fastest-varying first for Fortran-ordered memory); byte_strides: the distance in bytes
 * between neighbours along each dim; itemsize: ATMOCORRECT_REAL32 or ATMOCORRECT_REAL64;
 * units: NULL or "" to skip the units check. */
int atmocorrect_add_field(atmocorrect_t *ac, const char *name, void *data, int ndim,
                          const int64_t *shape, const int64_t *byte_strides, int itemsize,
                          const char *units, char *errmsg, size_t errlen);

/* model_time and dt in seconds. */
int atmocorrect_step(atmocorrect_t *ac, double model_time, double dt, char *errmsg,
                     size_t errlen);

/* Copy the last increment of a registered field (diagnose or apply mode) into out. */
int atmocorrect_get_increment(atmocorrect_t *ac, const char *name, void *out, int ndim,
                              const int64_t *shape, const int64_t *byte_strides, int itemsize,
                              char *errmsg, size_t errlen);

/* The address the library uses for a registered field (to verify that nothing is copied). */
int atmocorrect_field_address(atmocorrect_t *ac, const char *name, intptr_t *address,
                              char *errmsg, size_t errlen);

int atmocorrect_finalize(atmocorrect_t *ac, char *errmsg, size_t errlen);

/* Print "[atmocorrect rank R] message" to stderr and call MPI_Abort on the host communicator. */
void atmocorrect_abort(const atmocorrect_t *ac, int status, const char *message);

#ifdef __cplusplus
}
#endif
#endif /* ATMOCORRECT_H */
