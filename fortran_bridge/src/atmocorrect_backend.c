/*
 * Backend selection: the embedded Python path (default) or the AOTInductor/libtorch one.
 *
 * libatmocorrect.so does not link libtorch. When a corrector's run.backend is "aot" (manifest
 * run table, or ATMOCORRECT_BACKEND=aot), atmocorrect_init dlopens libatmocorrect_aot.so from
 * the directory this library lies in (found with dladdr) and loads the checkpoint's package;
 * the Python side has already checked the package's sha256, torch version and platform. At the
 * first step Python computes the plan once (fields, halo exchange, run configuration) and
 * hands it over; from then on atmocorrect_step and atmocorrect_get_increment never enter Python.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atmocorrect_aot.h"
#include "atmocorrect_internal.h"

#define AOT_LIBRARY "libatmocorrect_aot.so"

typedef struct ac_slot {
  int handle;
  int off;         /* run mode "off": step returns at once */
  int configured;  /* the plan was handed over (and is current) */
  int planned;     /* a plan was handed over once: the C++ side keeps the increments */
  ac_aot *state;
  struct ac_slot *next;
} ac_slot;

static ac_slot *slots = NULL;
static void *aot_library = NULL;
static ac_aot_open_fn aot_open;
static ac_aot_configure_fn aot_configure;
static ac_aot_step_fn aot_step;
static ac_aot_get_increment_fn aot_get_increment;
static ac_aot_close_fn aot_close;
static ac_aot_torch_version_fn aot_torch_version;

static ac_slot *find_slot(int handle) {
  for (ac_slot *s = slots; s != NULL; s = s->next)
    if (s->handle == handle) return s;
  return NULL;
}

static int load_library(char *errmsg, size_t errlen) {
  if (aot_library != NULL) return 0;
  Dl_info info;
  char self[4096], path[4200];
  if (dladdr((void *)&load_library, &info) == 0 || info.dli_fname == NULL) {
    ac_set_error(errmsg, errlen, "atmocorrect_init: backend 'aot': cannot locate libatmocorrect.so (dladdr failed)");
    return ATMOCORRECT_EUSAGE;
  }
  snprintf(self, sizeof self, "%s", info.dli_fname);
  snprintf(path, sizeof path, "%s/%s", dirname(self), AOT_LIBRARY);
  if (access(path, R_OK) != 0) {
    ac_set_error(errmsg, errlen,
                 "atmocorrect_init: backend 'aot' needs %s, which this installation lacks (atmocorrect "
                 "was built without Torch or with ATMOCORRECT_WITH_AOT=OFF); reinstall with torch "
                 "present, or use backend 'python'",
                 path);
    return ATMOCORRECT_EUSAGE;
  }
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    const char *why = dlerror();
    ac_set_error(errmsg, errlen, "atmocorrect_init: backend 'aot': cannot load %s: %s", path, why ? why : "?");
    return ATMOCORRECT_EUSAGE;
  }
  aot_open = (ac_aot_open_fn)dlsym(lib, "ac_aot_open");
  aot_configure = (ac_aot_configure_fn)dlsym(lib, "ac_aot_configure");
  aot_step = (ac_aot_step_fn)dlsym(lib, "ac_aot_step");
  aot_get_increment = (ac_aot_get_increment_fn)dlsym(lib, "ac_aot_get_increment");
  aot_close = (ac_aot_close_fn)dlsym(lib, "ac_aot_close");
  aot_torch_version = (ac_aot_torch_version_fn)dlsym(lib, "ac_aot_torch_version");
  if (!aot_open || !aot_configure || !aot_step || !aot_get_increment || !aot_close || !aot_torch_version) {
    ac_set_error(errmsg, errlen, "atmocorrect_init: backend 'aot': %s lacks the ac_aot_* functions (a stale build?)",
                 path);
    dlclose(lib);
    return ATMOCORRECT_EUSAGE;
  }
  aot_library = lib;
  return 0;
}

static int copy_str(PyObject *item, char *out, size_t n) {
  const char *text = item ? PyUnicode_AsUTF8(item) : NULL;
  if (text == NULL) return -1;
  snprintf(out, n, "%s", text);
  return 0;
}

int ac_backend_init(atmocorrect_t *ac, char *errmsg, size_t errlen) {
  char backend[32] = "", mode[32] = "", package[4096] = "", torch_version[64] = "";
  PyObject *value = NULL;
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *args = Py_BuildValue("(i)", ac->handle);
  int rc = ac_call_object("atmocorrect_init", "backend_info", args, &value, errmsg, errlen);
  Py_XDECREF(args);
  if (rc == 0 && (value == NULL || !PyTuple_Check(value) || PyTuple_Size(value) != 4 ||
                  copy_str(PyTuple_GetItem(value, 0), backend, sizeof backend) ||
                  copy_str(PyTuple_GetItem(value, 1), mode, sizeof mode) ||
                  copy_str(PyTuple_GetItem(value, 2), package, sizeof package) ||
                  copy_str(PyTuple_GetItem(value, 3), torch_version, sizeof torch_version))) {
    ac_set_error(errmsg, errlen, "atmocorrect_init: backend_info returned an unexpected value");
    rc = ATMOCORRECT_EMODEL;
  }
  Py_XDECREF(value);
  if (PyErr_Occurred()) PyErr_Clear();
  PyGILState_Release(gil);
  if (rc != 0 || strcmp(backend, "aot") != 0) return rc;

  rc = load_library(errmsg, errlen);
  if (rc != 0) return rc;
  /* the libtorch it was built against must be the torch of this environment ("2.13.0+cpu") */
  const char *built = aot_torch_version();
  size_t n = strlen(built);
  if (n == 0 || strncmp(built, torch_version, n) != 0 ||
      (torch_version[n] != '\0' && torch_version[n] != '+')) {
    ac_set_error(errmsg, errlen,
                 "atmocorrect_init: backend 'aot': %s was built against libtorch %s, but this "
                 "environment has torch %s; reinstall atmocorrect (make install) with this torch",
                 AOT_LIBRARY, built, torch_version);
    return ATMOCORRECT_EUSAGE;
  }
  ac_aot *state = NULL;
  rc = aot_open(package, &state, errmsg, errlen);
  if (rc != 0) return rc;
  ac_slot *slot = calloc(1, sizeof *slot);
  if (slot == NULL) {
    aot_close(state);
    ac_set_error(errmsg, errlen, "atmocorrect_init: out of memory");
    return ATMOCORRECT_EUSAGE;
  }
  slot->handle = ac->handle;
  slot->off = strcmp(mode, "off") == 0;
  slot->state = state;
  slot->next = slots;
  slots = slot;
  return 0;
}

void ac_backend_invalidate(const atmocorrect_t *ac) {
  ac_slot *slot = ac ? find_slot(ac->handle) : NULL;
  if (slot != NULL) slot->configured = 0; /* a new field or grid: the plan is recomputed */
}

int ac_backend_is_aot(const atmocorrect_t *ac) { return ac != NULL && find_slot(ac->handle) != NULL; }

/* The plan, computed once by atmocorrect.aot.bridge_plan (collective), handed to C++. */
static int configure(ac_slot *slot, const atmocorrect_t *ac, char *errmsg, size_t errlen) {
  PyObject *value = NULL;
  int64_t *words = NULL;
  double *floats = NULL;
  char *names = NULL;
  size_t nwords = 0, nfloats = 0;
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *args = Py_BuildValue("(i)", ac->handle);
  int rc = ac_call_object("atmocorrect_step", "aot_plan", args, &value, errmsg, errlen);
  Py_XDECREF(args);
  if (rc == 0) {
    PyObject *w = value && PyTuple_Check(value) && PyTuple_Size(value) >= 3 ? PyTuple_GetItem(value, 0) : NULL;
    PyObject *f = w ? PyTuple_GetItem(value, 1) : NULL;
    const char *n = w ? PyUnicode_AsUTF8(PyTuple_GetItem(value, 2)) : NULL;
    if (w && f && n && PyBytes_Check(w) && PyBytes_Check(f)) {
      nwords = (size_t)PyBytes_Size(w) / sizeof(int64_t);
      nfloats = (size_t)PyBytes_Size(f) / sizeof(double);
      words = malloc(nwords * sizeof *words + 1);
      floats = malloc(nfloats * sizeof *floats + 1);
      names = strdup(n);
      if (words && floats && names) {
        memcpy(words, PyBytes_AsString(w), nwords * sizeof *words);
        memcpy(floats, PyBytes_AsString(f), nfloats * sizeof *floats);
      } else {
        rc = ATMOCORRECT_EUSAGE;
        ac_set_error(errmsg, errlen, "atmocorrect_step: out of memory for the aot plan");
      }
    } else {
      rc = ATMOCORRECT_EMODEL;
      ac_set_error(errmsg, errlen, "atmocorrect_step: aot_plan returned an unexpected value");
    }
  }
  Py_XDECREF(value);
  if (PyErr_Occurred()) PyErr_Clear();
  PyGILState_Release(gil);
  if (rc == 0) rc = aot_configure(slot->state, ac->comm, words, nwords, floats, nfloats, names, errmsg, errlen);
  if (rc == 0) slot->configured = slot->planned = 1;
  free(words);
  free(floats);
  free(names);
  return rc;
}

int ac_backend_step(atmocorrect_t *ac, double model_time, double dt, char *errmsg, size_t errlen) {
  ac_slot *slot = find_slot(ac->handle);
  if (slot == NULL) {
    ac_set_error(errmsg, errlen, "atmocorrect_step: handle %d has no aot backend", ac->handle);
    return ATMOCORRECT_EUSAGE;
  }
  if (slot->off) {
    if (errmsg && errlen) errmsg[0] = '\0';
    return 0;
  }
  ac_fpe_state fpe;
  ac_fpe_hold(&fpe);
  int rc = slot->configured ? 0 : configure(slot, ac, errmsg, errlen);
  if (rc == 0) rc = aot_step(slot->state, model_time, dt, errmsg, errlen);
  ac_fpe_restore(&fpe);
  return rc;
}

int ac_backend_get_increment(atmocorrect_t *ac, const char *name, void *out, int ndim,
                             const int64_t *shape, const int64_t *byte_strides, int itemsize,
                             int *rc, char *errmsg, size_t errlen) {
  ac_slot *slot = find_slot(ac->handle);
  if (slot == NULL || !slot->planned) return 0; /* before the first step: Python says zeros */
  ac_fpe_state fpe;
  ac_fpe_hold(&fpe);
  int status = aot_get_increment(slot->state, name, out, ndim, shape, byte_strides, itemsize, errmsg, errlen);
  ac_fpe_restore(&fpe);
  if (status < 0) return 0; /* a field the plan does not hold (yet): Python checks and answers */
  *rc = status;
  return 1;
}

void ac_backend_finalize(atmocorrect_t *ac) {
  for (ac_slot **p = &slots; *p != NULL; p = &(*p)->next) {
    if ((*p)->handle != ac->handle) continue;
    ac_slot *slot = *p;
    *p = slot->next;
    ac_fpe_state fpe;
    ac_fpe_hold(&fpe);
    aot_close(slot->state);
    ac_fpe_restore(&fpe);
    free(slot);
    return;
  }
}
