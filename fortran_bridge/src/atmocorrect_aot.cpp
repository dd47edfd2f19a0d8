// The AOTInductor/libtorch backend of the bridge (libatmocorrect_aot.so): the step without Python.
//
// At the first step the core library hands over a plan computed once in Python
// (atmocorrect.aot.bridge_plan): the registered host arrays in model order, the halo, the halo
// exchange plan of atmocorrect.decomposition, the run configuration. Each step then does in
// C++ what Corrector._step does in Python, in the same order and with the same arithmetic:
//
//   mode off -> return; dt check; NaN/Inf check of the host arrays; agreement (one
//   MPI_Allreduce); host arrays -> float32 batch (1, F, L, *S_ext); halo exchange inside the
//   batch (MPI subarray datatypes, nothing packed by hand) and edge replication on
//   non-periodic boundaries; windows (unfold, as windows() in models/neural.py); the compiled
//   model in chunks of 256 windows; increments = tendency * dt * taper, clipped, checked;
//   agreement; in apply mode added in place to the host arrays.
//
// Every extern "C" function catches C++ exceptions and returns a status and a message.
#include "atmocorrect_aot.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "atmocorrect.h"

namespace {

constexpr int kPlanVersion = 1;
constexpr int kMsgLen = 1024;

void set_error(char *errmsg, size_t errlen, const char *fmt, ...) {
  if (errmsg == nullptr || errlen == 0) return;
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(errmsg, errlen, fmt, args);
  va_end(args);
}

void clear_error(char *errmsg, size_t errlen) {
  if (errmsg != nullptr && errlen > 0) errmsg[0] = '\0';
}

const char *kind_of(int code) {
  switch (code) {
    case ATMOCORRECT_ECHECKPOINT: return "CheckpointError";
    case ATMOCORRECT_EFIELD: return "FieldError";
    case ATMOCORRECT_EGRID: return "GridError";
    case ATMOCORRECT_ESTATE: return "StateError";
    case ATMOCORRECT_EMODEL: return "ModelError";
    case ATMOCORRECT_EUSAGE: return "UsageError";
    default: return "Error";
  }
}

std::string what_of(const std::exception &e) {
  if (auto *ce = dynamic_cast<const c10::Error *>(&e)) return ce->what_without_backtrace();
  return e.what();
}

// A local failure: status and message (empty when fine).
struct Failure {
  int code = 0;
  std::string message;
  void set(int c, std::string m) {
    if (code == 0) {
      code = c;
      message = std::move(m);
    }
  }
};

struct Field {
  std::string name;
  void *address = nullptr;
  int itemsize = 0;
  int corrected = -1;  // index in the model's output, -1: input only
  std::vector<int64_t> shape, strides;  // strides in elements
  at::Tensor last;  // last increment, float64, host shape (undefined before the first step)

  at::Tensor host() const {
    auto dtype = itemsize == 8 ? at::kDouble : at::kFloat;
    return at::from_blob(address, shape, strides, at::TensorOptions().dtype(dtype));
  }
};

struct Piece {
  int peer = 0, tag = 0;
  std::vector<int64_t> src_lo, src_hi, dst_lo, dst_hi;  // spatial boxes
  MPI_Datatype type = MPI_DATATYPE_NULL;
};

// Cursor over the plan's int64 words.
struct Reader {
  const int64_t *w;
  size_t n, i = 0;
  int64_t next() {
    if (i >= n) throw std::runtime_error("the plan from atmocorrect.aot.bridge_plan is truncated");
    return w[i++];
  }
  std::vector<int64_t> take(int64_t k) {
    std::vector<int64_t> v;
    for (int64_t j = 0; j < k; ++j) v.push_back(next());
    return v;
  }
};

}  // namespace

struct ac_aot {
  std::string package;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  bool configured = false;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  int mode = 1, skip_nonfinite = 0, threads = 1, has_max = 0;
  double taper = 1.0, max_increment = 0.0;
  int64_t F = 0, L = 1, nd = 0, Fc = 0, chunk = 256;
  std::vector<int64_t> halo, periodic, offset, global, interior, ext;
  std::vector<Field> fields;
  std::vector<Piece> recvs, sends;
  at::Tensor batch;  // (1, F, L, *S_ext) float32, reused every step
  long steps = 0, skipped = 0;

  void free_types() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    for (auto *list : {&recvs, &sends})
      for (auto &p : *list)
        if (p.type != MPI_DATATYPE_NULL) {
          if (!finalized) MPI_Type_free(&p.type);
          p.type = MPI_DATATYPE_NULL;
        }
  }

  // Collective agreement on a phase: one MPI_Allreduce when every rank succeeded. Returns the
  // status this rank reports (its own failure, or EREMOTE naming the first failing rank).
  int agree(const Failure &local, bool skip_local, bool *skip_any, const char *where, char *errmsg,
            size_t errlen) {
    if (skip_any) *skip_any = skip_local;
    if (size > 1) {
      int flags[2] = {local.code != 0 ? 1 : 0, skip_local ? 1 : 0};
      MPI_Allreduce(MPI_IN_PLACE, flags, 2, MPI_INT, MPI_MAX, comm);
      if (skip_any) *skip_any = flags[1] != 0;
      if (flags[0] != 0) {
        int first = local.code != 0 ? rank : size;
        MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm);
        char text[kMsgLen] = "";
        if (rank == first)
          std::snprintf(text, sizeof text, "%s: %s", kind_of(local.code), local.message.c_str());
        MPI_Bcast(text, kMsgLen, MPI_CHAR, first, comm);
        text[kMsgLen - 1] = '\0';
        if (local.code == 0) {
          set_error(errmsg, errlen, "%s: %s failed on rank %d (%s); state left untouched", where, where,
                    first, text);
          return ATMOCORRECT_EREMOTE;
        }
      }
    }
    if (local.code != 0) {
      set_error(errmsg, errlen, "%s: %s", where, local.message.c_str());
      return local.code;
    }
    return 0;
  }

  at::Tensor interior_of(at::Tensor t, int64_t first_spatial) const {
    for (int64_t d = 0; d < nd; ++d) t = t.narrow(first_spatial + d, halo[d], interior[d]);
    return t;
  }

  // batch[:, :, :, box] for a spatial box [lo, hi) in extended coordinates
  at::Tensor region(const std::vector<int64_t> &lo, const std::vector<int64_t> &hi) const {
    at::Tensor t = batch;
    for (int64_t d = 0; d < nd; ++d) t = t.narrow(3 + d, lo[d], hi[d] - lo[d]);
    return t;
  }

  MPI_Datatype subarray(const std::vector<int64_t> &lo, const std::vector<int64_t> &hi) const {
    std::vector<int> sizes = {(int)F, (int)L}, sub = {(int)F, (int)L}, starts = {0, 0};
    for (int64_t d = 0; d < nd; ++d) {
      sizes.push_back((int)ext[d]);
      sub.push_back((int)(hi[d] - lo[d]));
      starts.push_back((int)lo[d]);
    }
    MPI_Datatype t;
    MPI_Type_create_subarray((int)sizes.size(), sizes.data(), sub.data(), starts.data(), MPI_ORDER_C,
                             MPI_FLOAT, &t);
    MPI_Type_commit(&t);
    return t;
  }

  void configure(const int64_t *words, size_t nwords, const double *floats, size_t nfloats,
                 const std::string &names) {
    Reader r{words, nwords};
    if (r.next() != kPlanVersion)
      throw std::runtime_error("the plan's version differs from this libatmocorrect_aot.so; reinstall");
    mode = (int)r.next();
    skip_nonfinite = (int)r.next();
    threads = (int)r.next();
    has_max = (int)r.next();
    F = r.next();
    L = r.next();
    nd = r.next();
    Fc = r.next();
    chunk = std::max<int64_t>(1, r.next());
    r.next();  // rank (from the communicator instead)
    r.next();  // size
    halo = r.take(nd);
    periodic = r.take(nd);
    offset = r.take(nd);
    global = r.take(nd);
    interior = r.take(nd);
    if (nfloats < 2) throw std::runtime_error("the plan's float words are truncated");
    taper = floats[0];
    max_increment = floats[1];
    std::vector<std::string> name_list;
    std::stringstream ss(names);
    for (std::string line; std::getline(ss, line);) name_list.push_back(line);
    if ((int64_t)name_list.size() != F) throw std::runtime_error("the plan names a different number of fields");
    std::vector<Field> previous = std::move(fields);  // a re-plan keeps the last increments
    fields.clear();
    for (int64_t f = 0; f < F; ++f) {
      Field fld;
      fld.name = name_list[f];
      fld.address = reinterpret_cast<void *>(static_cast<intptr_t>(r.next()));
      fld.itemsize = (int)r.next();
      fld.corrected = (int)r.next();
      int64_t ndim = r.next();
      fld.shape = r.take(ndim);
      std::vector<int64_t> bytes = r.take(ndim);
      for (int64_t d = 0; d < ndim; ++d) {
        if (bytes[d] < 0 || bytes[d] % fld.itemsize != 0) {
          std::ostringstream m;
          m << "field '" << fld.name << "' on rank " << rank << ": byte stride " << bytes[d]
            << " along dimension " << d + 1 << " is negative or not a multiple of the element size "
            << fld.itemsize << "; the aot backend needs such strides";
          throw std::invalid_argument(m.str());
        }
        fld.strides.push_back(bytes[d] / fld.itemsize);
      }
      for (const Field &old : previous)
        if (old.name == fld.name && old.shape == fld.shape) fld.last = old.last;
      fields.push_back(std::move(fld));
    }
    ext.clear();
    for (int64_t d = 0; d < nd; ++d) ext.push_back(interior[d] + 2 * halo[d]);
    free_types();
    recvs.clear();
    sends.clear();
    int64_t nrecv = r.next();
    for (int64_t k = 0; k < nrecv; ++k) {
      Piece p;
      p.peer = (int)r.next();
      p.tag = (int)r.next();
      for (int64_t d = 0; d < nd; ++d) {
        p.src_lo.push_back(r.next());
        p.src_hi.push_back(r.next());
      }
      for (int64_t d = 0; d < nd; ++d) {
        p.dst_lo.push_back(r.next());
        p.dst_hi.push_back(r.next());
      }
      if (p.peer != rank) p.type = subarray(p.dst_lo, p.dst_hi);
      recvs.push_back(std::move(p));
    }
    int64_t nsend = r.next();
    for (int64_t k = 0; k < nsend; ++k) {
      Piece p;
      p.peer = (int)r.next();
      p.tag = (int)r.next();
      for (int64_t d = 0; d < nd; ++d) {  // interior coordinates -> extended ones
        p.src_lo.push_back(r.next() + halo[d]);
        p.src_hi.push_back(r.next() + halo[d]);
      }
      p.type = subarray(p.src_lo, p.src_hi);
      sends.push_back(std::move(p));
    }
    std::vector<int64_t> bshape = {1, F, L};
    bshape.insert(bshape.end(), ext.begin(), ext.end());
    batch = at::zeros(bshape, at::kFloat);
    if (threads > 0) at::set_num_threads(threads);
    configured = true;
  }

  void fill_batch() {
    at::Tensor b0 = batch.select(0, 0);  // (F, L, *S_ext)
    for (int64_t f = 0; f < F; ++f) {
      const Field &fld = fields[f];
      at::Tensor dst = interior_of(b0.select(0, f), 1);  // (L, *S)
      std::vector<int64_t> sl(interior.begin(), interior.end());
      sl.push_back(L);
      at::Tensor h = fld.host().reshape(sl);  // (*S, L), a view unless levels span several dims
      std::vector<int64_t> perm = {nd};
      for (int64_t d = 0; d < nd; ++d) perm.push_back(d);
      dst.copy_(h.permute(perm));
    }
  }

  void exchange() {
    std::vector<MPI_Request> requests;
    float *base = batch.data_ptr<float>();
    for (auto &p : sends) {
      requests.emplace_back();
      MPI_Isend(base, 1, p.type, p.peer, p.tag, comm, &requests.back());
    }
    for (auto &p : recvs) {
      if (p.peer == rank) continue;
      requests.emplace_back();
      MPI_Irecv(base, 1, p.type, p.peer, p.tag, comm, &requests.back());
    }
    for (auto &p : recvs) {  // pieces this rank owns (periodic wrap): interior -> halo
      if (p.peer != rank) continue;
      std::vector<int64_t> lo, hi;
      bool same = true;
      for (int64_t d = 0; d < nd; ++d) {
        lo.push_back(p.src_lo[d] + halo[d]);
        hi.push_back(p.src_hi[d] + halo[d]);
        same = same && lo[d] == p.dst_lo[d];
      }
      if (!same) region(p.dst_lo, p.dst_hi).copy_(region(lo, hi));
    }
    if (!requests.empty()) MPI_Waitall((int)requests.size(), requests.data(), MPI_STATUSES_IGNORE);
    // Non-periodic boundaries: replicate the edge value (Decomposition._replicate_edges).
    for (int64_t d = 0; d < nd; ++d) {
      int64_t h = halo[d];
      if (h == 0 || periodic[d]) continue;
      int64_t lo_global = offset[d] - h, hi_global = offset[d] + interior[d] + h, n = ext[d];
      int64_t below = std::max<int64_t>(0, -lo_global);
      int64_t above = std::max<int64_t>(0, hi_global - global[d]);
      int64_t dim = 3 + d;
      if (below) {
        at::Tensor dst = batch.narrow(dim, 0, below);
        dst.copy_(batch.narrow(dim, below, 1).expand_as(dst));
      }
      if (above) {
        at::Tensor dst = batch.narrow(dim, n - above, above);
        dst.copy_(batch.narrow(dim, n - above - 1, 1).expand_as(dst));
      }
    }
  }

  // The windows as a strided view (1, *S, F, L, *W) of the batch: no copy (windows() in
  // models/neural.py reshapes this view; run_model copies it one chunk at a time instead).
  at::Tensor window_view() const {
    at::Tensor out = batch;
    for (int64_t d = 0; d < nd; ++d) out = out.unfold(3 + d, 2 * halo[d] + 1, 1);
    std::vector<int64_t> perm = {0};
    for (int64_t d = 0; d < nd; ++d) perm.push_back(3 + d);
    perm.push_back(1);
    perm.push_back(2);
    for (int64_t d = 0; d < nd; ++d) perm.push_back(3 + nd + d);
    return out.permute(perm);
  }

  // The compiled model over blocks of rows of the first spatial dimension, about `chunk`
  // windows each (as WindowPredictor.tendency_batch): each block's windows are copied while
  // in cache, never the whole block's 9x larger window array at once. Returns (N, Fc, L).
  at::Tensor run_model(const at::Tensor &view) {
    std::vector<int64_t> wshape = {-1, F, L};
    for (int64_t d = 0; d < nd; ++d) wshape.push_back(2 * halo[d] + 1);
    int64_t rows_total = nd ? interior[0] : 1, per_row = 1;
    for (int64_t d = 1; d < nd; ++d) per_row *= interior[d];
    int64_t rows = std::max<int64_t>(1, chunk / std::max<int64_t>(1, per_row));
    at::Tensor out = at::empty({rows_total * per_row, Fc, L}, at::kFloat);
    for (int64_t r0 = 0; r0 < rows_total; r0 += rows) {
      int64_t nr = std::min(rows, rows_total - r0);
      at::Tensor part = (nd ? view.narrow(1, r0, nr) : view).reshape(wshape).contiguous();
      int64_t k = part.size(0);
      if (k == 1) part = at::cat({part, part});  // the package's batch dimension starts at 2
      std::vector<at::Tensor> res = loader->run({part});
      if (res.empty()) throw std::runtime_error("the compiled model returned no output");
      at::Tensor o = res[0];
      if (o.dim() != 3 || o.size(0) != part.size(0) || o.size(1) != Fc || o.size(2) != L) {
        std::ostringstream m;
        m << "the compiled model returned shape " << o.sizes() << ", expected [" << part.size(0) << ", "
          << Fc << ", " << L << "]";
        throw std::runtime_error(m.str());
      }
      out.narrow(0, r0 * per_row, k).copy_(o.narrow(0, 0, k));
    }
    return out;
  }

  int step(double dt, char *errmsg, size_t errlen) {
    const char *where = "atmocorrect_step";
    if (mode == 0) return 0;
    if (!std::isfinite(dt) || dt <= 0) {
      set_error(errmsg, errlen, "%s: dt must be a positive number of seconds, got %g", where, dt);
      return ATMOCORRECT_EUSAGE;
    }
    c10::InferenceMode guard;
    Failure failure;
    bool skip = false;
    try {
      for (const Field &fld : fields) {
        at::Tensor h = fld.host();
        if (std::isfinite(h.sum(at::kDouble).item<double>())) continue;
        int64_t bad = h.numel() - at::isfinite(h).sum().item<int64_t>();
        if (bad == 0) continue;  // a sum that overflowed from finite values
        if (skip_nonfinite) {
          skip = true;
        } else {
          std::ostringstream m;
          m << "field '" << fld.name << "' on rank " << rank << " holds " << bad
            << " NaN/Inf value(s); state left untouched (set run.nonfinite = 'skip' to skip such steps)";
          failure.set(ATMOCORRECT_ESTATE, m.str());
        }
        break;
      }
    } catch (const std::exception &e) {  // still reach the agreement: no rank is left waiting
      failure.set(ATMOCORRECT_EMODEL, "checking the host arrays on rank " + std::to_string(rank) + ": " + what_of(e));
    }
    bool skip_any = false;
    int rc = agree(failure, skip, &skip_any, where, errmsg, errlen);
    if (rc) return rc;
    if (skip_any) {
      ++skipped;
      ++steps;
      return 0;
    }
    std::vector<at::Tensor> incs(fields.size());
    try {
      fill_batch();
      exchange();
      at::Tensor out = run_model(window_view());  // (N, Fc, L)
      std::vector<int64_t> sfl(interior.begin(), interior.end());
      sfl.push_back(Fc);
      sfl.push_back(L);
      at::Tensor tend = out.to(at::kDouble).reshape(sfl);  // (*S, Fc, L)
      for (size_t f = 0; f < fields.size(); ++f) {
        const Field &fld = fields[f];
        if (fld.corrected < 0) continue;
        at::Tensor inc = (tend.select(nd, fld.corrected) * (dt * taper)).reshape(fld.shape);
        if (has_max) inc.clamp_(-max_increment, max_increment);
        if (!std::isfinite(inc.sum().item<double>()) && !at::isfinite(inc).all().item<bool>()) {
          failure.set(ATMOCORRECT_EMODEL, "model produced NaN/Inf increments for field '" + fld.name + "'");
          break;
        }
        incs[f] = inc;
      }
    } catch (const std::exception &e) {
      failure.set(ATMOCORRECT_EMODEL, "the compiled model (" + package + ") failed on rank " +
                                          std::to_string(rank) + ": " + what_of(e));
    } catch (...) {
      failure.set(ATMOCORRECT_EMODEL, "the compiled model (" + package + ") failed on rank " +
                                          std::to_string(rank) + " (unknown C++ exception)");
    }
    rc = agree(failure, false, nullptr, where, errmsg, errlen);
    if (rc) return rc;
    ++steps;
    for (size_t f = 0; f < fields.size(); ++f) {
      if (!incs[f].defined()) continue;
      fields[f].last = incs[f];
      if (mode != 1) continue;
      at::Tensor h = fields[f].host();
      if (fields[f].itemsize == 8)
        h.add_(incs[f]);
      else  // float64 sum rounded once to the host's float32, as numpy's casting="unsafe" add
        h.copy_(h.to(at::kDouble).add_(incs[f]));
    }
    clear_error(errmsg, errlen);
    return 0;
  }
};

#ifndef ATMOCORRECT_TORCH_VERSION
#define ATMOCORRECT_TORCH_VERSION ""
#endif

extern "C" {

const char *ac_aot_torch_version(void) { return ATMOCORRECT_TORCH_VERSION; }

int ac_aot_open(const char *package, ac_aot **out, char *errmsg, size_t errlen) {
  if (out == nullptr || package == nullptr) {
    set_error(errmsg, errlen, "ac_aot_open: package and out must not be NULL");
    return ATMOCORRECT_EUSAGE;
  }
  *out = nullptr;
  try {
    auto state = std::make_unique<ac_aot>();
    state->package = package;
    c10::InferenceMode guard;
    state->loader = std::make_unique<torch::inductor::AOTIModelPackageLoader>(state->package);
    *out = state.release();
    clear_error(errmsg, errlen);
    return 0;
  } catch (const std::exception &e) {
    set_error(errmsg, errlen, "atmocorrect_init: libtorch cannot load the AOTInductor package %s: %s", package,
              what_of(e).c_str());
    return ATMOCORRECT_ECHECKPOINT;
  } catch (...) {
    set_error(errmsg, errlen, "atmocorrect_init: libtorch cannot load the AOTInductor package %s", package);
    return ATMOCORRECT_ECHECKPOINT;
  }
}

int ac_aot_configure(ac_aot *state, MPI_Fint comm, const int64_t *words, size_t nwords,
                     const double *floats, size_t nfloats, const char *names, char *errmsg,
                     size_t errlen) {
  if (state == nullptr) {
    set_error(errmsg, errlen, "atmocorrect_step: the aot backend is not open");
    return ATMOCORRECT_EUSAGE;
  }
  Failure failure;
  state->comm = MPI_Comm_f2c(comm);
  if (state->comm == MPI_COMM_NULL) state->comm = MPI_COMM_SELF;
  MPI_Comm_rank(state->comm, &state->rank);
  MPI_Comm_size(state->comm, &state->size);
  try {
    state->configure(words, nwords, floats, nfloats, names ? names : "");
  } catch (const std::invalid_argument &e) {
    state->configured = false;
    failure.set(ATMOCORRECT_EFIELD, e.what());
  } catch (const std::exception &e) {
    state->configured = false;
    failure.set(ATMOCORRECT_EUSAGE, "aot backend setup failed on rank " + std::to_string(state->rank) + ": " +
                                        what_of(e));
  } catch (...) {
    state->configured = false;
    failure.set(ATMOCORRECT_EUSAGE, "aot backend setup failed on rank " + std::to_string(state->rank));
  }
  int rc = state->agree(failure, false, nullptr, "atmocorrect_step", errmsg, errlen);
  if (rc) state->configured = false;
  return rc;
}

int ac_aot_step(ac_aot *state, double model_time, double dt, char *errmsg, size_t errlen) {
  (void)model_time;
  if (state == nullptr || !state->configured) {
    set_error(errmsg, errlen, "atmocorrect_step: the aot backend has no plan yet");
    return ATMOCORRECT_EUSAGE;
  }
  try {
    return state->step(dt, errmsg, errlen);
  } catch (const std::exception &e) {  // not reached in practice: step catches model errors
    set_error(errmsg, errlen, "atmocorrect_step: rank %d: %s", state->rank, what_of(e).c_str());
    return ATMOCORRECT_EMODEL;
  } catch (...) {
    set_error(errmsg, errlen, "atmocorrect_step: rank %d: unknown C++ exception", state->rank);
    return ATMOCORRECT_EMODEL;
  }
}

int ac_aot_get_increment(ac_aot *state, const char *name, void *out, int ndim, const int64_t *shape,
                         const int64_t *byte_strides, int itemsize, char *errmsg, size_t errlen) {
  std::string key = name ? name : "";
  key.erase(key.find_last_not_of(' ') + 1);
  key.erase(0, std::min(key.find_first_not_of(' '), key.size()));
  const char *where = "atmocorrect_get_increment";
  try {
    const Field *fld = nullptr;
    for (const auto &f : state->fields)
      if (f.name == key) fld = &f;
    if (fld == nullptr) return -1;  // not in the plan: the caller asks Python
    std::vector<int64_t> s(shape, shape + ndim), st;
    if (s != fld->shape) {
      std::ostringstream m;
      m << "output array " << at::IntArrayRef(s) << " differs from the registered " << at::IntArrayRef(fld->shape);
      set_error(errmsg, errlen, "%s('%s'): field '%s': %s", where, key.c_str(), key.c_str(), m.str().c_str());
      return ATMOCORRECT_EUSAGE;
    }
    for (int d = 0; d < ndim; ++d) {
      if (byte_strides[d] < 0 || byte_strides[d] % itemsize != 0) {
        set_error(errmsg, errlen, "%s('%s'): byte stride %lld is negative or not a multiple of %d", where,
                  key.c_str(), (long long)byte_strides[d], itemsize);
        return ATMOCORRECT_EUSAGE;
      }
      st.push_back(byte_strides[d] / itemsize);
    }
    c10::InferenceMode guard;
    at::Tensor o = at::from_blob(out, s, st, at::TensorOptions().dtype(itemsize == 8 ? at::kDouble : at::kFloat));
    if (fld->last.defined())
      o.copy_(fld->last);
    else
      o.zero_();
    clear_error(errmsg, errlen);
    return 0;
  } catch (const std::exception &e) {
    set_error(errmsg, errlen, "%s('%s'): %s", where, key.c_str(), what_of(e).c_str());
    return ATMOCORRECT_EMODEL;
  } catch (...) {
    set_error(errmsg, errlen, "%s('%s'): unknown C++ exception", where, key.c_str());
    return ATMOCORRECT_EMODEL;
  }
}

void ac_aot_close(ac_aot *state) {
  if (state == nullptr) return;
  try {
    state->free_types();
    delete state;
  } catch (...) {
  }
}

}  // extern "C"
