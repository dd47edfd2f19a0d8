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
PyObject *ac_int_tuple(int n, const int64_t *values);

#endif
