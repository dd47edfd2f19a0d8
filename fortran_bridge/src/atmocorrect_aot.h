/*
 * The extern "C" interface of libatmocorrect_aot.so, the AOTInductor/libtorch backend.
 *
 * libatmocorrect.so never links it: it dlopens it (from its own directory) when a corrector's
 * run.backend is "aot" and looks these symbols up by name. Every function returns a status
 * (the ATMOCORRECT_E* codes of atmocorrect.h) and writes a message into errmsg; no C++
 * exception crosses this boundary.
 */
#ifndef ATMOCORRECT_AOT_H
#define ATMOCORRECT_AOT_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ac_aot ac_aot;

/* Load the package (model.pt2); *out receives the backend state. Local (not collective). */
int ac_aot_open(const char *package, ac_aot **out, char *errmsg, size_t errlen);

/* The plan from atmocorrect.aot.bridge_plan (int64 and float64 words, field names one per
 * line); collective over comm: every rank returns the same status. */
int ac_aot_configure(ac_aot *state, MPI_Fint comm, const int64_t *words, size_t nwords,
                     const double *floats, size_t nfloats, const char *names, char *errmsg,
                     size_t errlen);

/* One step over the registered host arrays; collective. */
int ac_aot_step(ac_aot *state, double model_time, double dt, char *errmsg, size_t errlen);

/* Copy the last increment of a registered field (zeros before the first step). Local.
 * Returns -1 (nothing written) for a field the plan does not hold. */
int ac_aot_get_increment(ac_aot *state, const char *name, void *out, int ndim,
                         const int64_t *shape, const int64_t *byte_strides, int itemsize,
                         char *errmsg, size_t errlen);

/* The libtorch version this library was built against (e.g. "2.13.0"). */
const char *ac_aot_torch_version(void);

/* Frees the state (and the MPI datatypes while MPI is still initialised). */
void ac_aot_close(ac_aot *state);

typedef int (*ac_aot_open_fn)(const char *, ac_aot **, char *, size_t);
typedef int (*ac_aot_configure_fn)(ac_aot *, MPI_Fint, const int64_t *, size_t, const double *,
                                   size_t, const char *, char *, size_t);
typedef int (*ac_aot_step_fn)(ac_aot *, double, double, char *, size_t);
typedef int (*ac_aot_get_increment_fn)(ac_aot *, const char *, void *, int, const int64_t *,
                                       const int64_t *, int, char *, size_t);
typedef void (*ac_aot_close_fn)(ac_aot *);
typedef const char *(*ac_aot_torch_version_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* ATMOCORRECT_AOT_H */
