/*
 * The embedded interpreter: started once per process, on the first atmocorrect_init.
 *
 * It finds the environment atmocorrect was installed into without PYTHONPATH: the interpreter
 * is configured with the executable recorded at build time (a venv's python, so its
 * pyvenv.cfg and site-packages are found), and the site-packages this library itself lies in
 * (found with dladdr) is added as a fallback, so a moved or relocated install still works.
 *
 * Fortran builds often enable floating-point traps (-ffpe-trap=invalid,zero,overflow); numpy
 * and torch raise those flags routinely. Every entry into Python therefore holds the host's
 * floating-point environment (traps masked, flags cleared) and restores it on the way out.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <fenv.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atmocorrect_internal.h"

#ifndef ATMOCORRECT_PYTHON_EXECUTABLE
#define ATMOCORRECT_PYTHON_EXECUTABLE ""
#endif

static PyObject *bridge_module = NULL;
static int started_here = 0;

void ac_set_error(char *errmsg, size_t errlen, const char *fmt, ...) {
  if (errmsg == NULL || errlen == 0) return;
  va_list args;
  va_start(args, fmt);
  vsnprintf(errmsg, errlen, fmt, args);
  va_end(args);
}

void ac_fpe_hold(ac_fpe_state *state) { feholdexcept(&state->env); }

void ac_fpe_restore(ac_fpe_state *state) {
  feclearexcept(FE_ALL_EXCEPT);
  fesetenv(&state->env);
}

/* The site-packages directory holding this library: <site>/atmocorrect/lib/libatmocorrect.so */
static int own_site_packages(char *out, size_t n) {
  Dl_info info;
  if (dladdr((void *)&own_site_packages, &info) == 0 || info.dli_fname == NULL) return -1;
  char path[4096];
  snprintf(path, sizeof path, "%s", info.dli_fname);
  char *libdir = dirname(path);         /* .../atmocorrect/lib */
  char *pkgdir = dirname(libdir);       /* .../atmocorrect */
  char *site = dirname(pkgdir);         /* .../site-packages */
  snprintf(out, n, "%s", site);
  return 0;
}

static void format_python_error(char *errmsg, size_t errlen, const char *where) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  const char *text = "unknown Python error";
  PyObject *str = value ? PyObject_Str(value) : NULL;
  if (str) text = PyUnicode_AsUTF8(str);
  const char *tname = type ? ((PyTypeObject *)type)->tp_name : "Error";
  ac_set_error(errmsg, errlen, "%s: %s: %s", where, tname, text ? text : "?");
  Py_XDECREF(str);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  PyErr_Clear();
}

static int import_bridge(char *errmsg, size_t errlen) {
  bridge_module = PyImport_ImportModule("atmocorrect._bridge");
  if (bridge_module != NULL) return 0;
  PyErr_Clear();
  char site[4096];
  if (own_site_packages(site, sizeof site) == 0) {
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    PyObject *entry = PyUnicode_FromString(site);
    if (sys_path && entry) PyList_Insert(sys_path, 0, entry);
    Py_XDECREF(entry);
    bridge_module = PyImport_ImportModule("atmocorrect._bridge");
    if (bridge_module != NULL) return 0;
  }
  format_python_error(errmsg, errlen,
                      "atmocorrect_init: cannot import the atmocorrect Python package "
                      "(set ATMOCORRECT_PYTHON to the python of the environment it is installed in)");
  return ATMOCORRECT_EPYTHON;
}

int ac_python_start(char *errmsg, size_t errlen) {
  if (bridge_module != NULL) return 0;
  if (!Py_IsInitialized()) {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* the host keeps its own signal handling */
    config.parse_argv = 0;
    const char *exe = getenv("ATMOCORRECT_PYTHON");
    if (exe == NULL || exe[0] == '\0') exe = ATMOCORRECT_PYTHON_EXECUTABLE;
    PyStatus status = PyStatus_Ok();
    if (exe[0] != '\0') {
      status = PyConfig_SetBytesString(&config, &config.program_name, exe);
      if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.executable, exe);
    }
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
      ac_set_error(errmsg, errlen, "atmocorrect_init: the embedded Python (%s) failed to start: %s",
                   exe[0] ? exe : "default", status.err_msg ? status.err_msg : "unknown error");
      return ATMOCORRECT_EPYTHON;
    }
    started_here = 1;
    int rc = import_bridge(errmsg, errlen);
    PyEval_SaveThread(); /* release the GIL; every call takes it with PyGILState_Ensure */
    return rc;
  }
  /* The host is itself Python (e.g. a driver through f90wrap): use its interpreter. */
  PyGILState_STATE gil = PyGILState_Ensure();
  int rc = import_bridge(errmsg, errlen);
  PyGILState_Release(gil);
  return rc;
}

int ac_python_started_here(void) { return started_here; }

int ac_call_object(const char *where, const char *function, PyObject *args, PyObject **value,
                   char *errmsg, size_t errlen) {
  *value = NULL;
  PyObject *fn = PyObject_GetAttrString(bridge_module, function);
  PyObject *result = fn ? PyObject_CallObject(fn, args) : NULL;
  Py_XDECREF(fn);
  if (result == NULL) {
    format_python_error(errmsg, errlen, where);
    return ATMOCORRECT_EMODEL;
  }
  if (!PyTuple_Check(result) || PyTuple_Size(result) < 2) {
    ac_set_error(errmsg, errlen, "%s: the Python bridge returned an unexpected value", where);
    Py_DECREF(result);
    return ATMOCORRECT_EMODEL;
  }
  int rc = (int)PyLong_AsLong(PyTuple_GetItem(result, 0));
  const char *msg = PyUnicode_AsUTF8(PyTuple_GetItem(result, 1));
  if (rc != 0) {
    ac_set_error(errmsg, errlen, "%s", msg ? msg : where);
  } else {
    if (errmsg && errlen) errmsg[0] = '\0';
    if (PyTuple_Size(result) >= 3) {
      *value = PyTuple_GetItem(result, 2);
      Py_XINCREF(*value);
    }
  }
  if (PyErr_Occurred()) PyErr_Clear();
  Py_DECREF(result);
  return rc;
}

int ac_call(const char *where, const char *function, PyObject *args, long long *value,
            char *errmsg, size_t errlen) {
  PyObject *obj = NULL;
  int rc = ac_call_object(where, function, args, &obj, errmsg, errlen);
  if (rc == 0 && value != NULL && obj != NULL) {
    *value = (obj != Py_None) ? PyLong_AsLongLong(obj) : 0;
    if (PyErr_Occurred()) PyErr_Clear();
  }
  Py_XDECREF(obj);
  return rc;
}

PyObject *ac_int_tuple(int n, const int64_t *values) {
  PyObject *t = PyTuple_New(n);
  for (int i = 0; i < n; ++i) PyTuple_SET_ITEM(t, i, PyLong_FromLongLong((long long)values[i]));
  return t;
}
