/*
 * Benchmark helper: run a line of Python in the interpreter the atmocorrect bridge embedded.
 *
 * The benchmark host uses it to time the corrector's own forward (plain Python, same process,
 * same torch threads, same data) interleaved with atmocorrect_step, and to install the
 * allocation probe. Like the bridge, it holds the host's floating-point environment (the host
 * is built with -ffpe-trap) and takes the GIL for the call. Not part of the library.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fenv.h>

int bench_py_exec(const char *code) {
  fenv_t env;
  feholdexcept(&env);
  if (!Py_IsInitialized()) return -2;
  PyGILState_STATE gil = PyGILState_Ensure();
  int rc = PyRun_SimpleString(code);
  PyGILState_Release(gil);
  feclearexcept(FE_ALL_EXCEPT);
  fesetenv(&env);
  return rc;
}
