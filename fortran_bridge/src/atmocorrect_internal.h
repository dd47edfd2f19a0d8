/* Internal helpers shared by the C API and the Fortran adaptor. Not installed. */
#ifndef ATMOCORRECT_INTERNAL_H
#define ATMOCORRECT_INTERNAL_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fenv.h>
#include <stdarg.h>
#include <stdint.h>

#include "atmocorrect.h"

typedef struct {
  fenv_t env;
} ac_fpe_state;

void ac_set_error(char *errmsg, size_t errlen, const char *fmt, ...);
void ac_fpe_hold(ac_fpe_state *state);
void ac_fpe_restore(ac_fpe_state *state);
int ac_python_start(char *errmsg, size_t errlen);
int ac_call(const char *where, const char *function, PyObject *args, long long *value,
            char *errmsg, size_t errlen);
/* As ac_call, but *value receives a new reference to the result's third item (or NULL). */
int ac_call_object(const char *where, const char *function, PyObject *args, PyObject **value,
                   char *errmsg, size_t errlen);
PyObject *ac_int_tuple(int n, const int64_t *values);

/* The aot backend (atmocorrect_backend.c): libatmocorrect_aot.so, dlopened on demand. */
int ac_backend_init(atmocorrect_t *ac, char *errmsg, size_t errlen);
int ac_backend_is_aot(const atmocorrect_t *ac);
void ac_backend_invalidate(const atmocorrect_t *ac);
int ac_backend_step(atmocorrect_t *ac, double model_time, double dt, char *errmsg, size_t errlen);
/* 1: handled by the backend (rc in *rc); 0: not configured yet, use Python. */
int ac_backend_get_increment(atmocorrect_t *ac, const char *name, void *out, int ndim,
                             const int64_t *shape, const int64_t *byte_strides, int itemsize,
                             int *rc, char *errmsg, size_t errlen);
void ac_backend_finalize(atmocorrect_t *ac);

#endif
