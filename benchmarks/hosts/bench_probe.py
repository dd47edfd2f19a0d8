"""Python side of the benchmark host (bench_host.f90), run inside the interpreter the bridge embeds.

``setup(handle)``   finds the :class:`~atmocorrect.coupling.Corrector` behind the Fortran handle and
                    hooks its network to capture the exact input tensors of the next step;
``arm()``           removes the hooks; from then on ``forward()`` runs the same network on the same
                    captured inputs, in plain Python (no bridge, no halo exchange, no conversion):
                    the denominator of ``coupling_overhead_ratio``;
``probe_begin()``   arms the allocation probe for the next ``atmocorrect_step``;
``probe_end(path)`` writes what it saw (bytes copied, where, and the model input) as JSON.

The probe relies on no internals beyond ``Corrector.fields``/``.predictor`` and the predictor's
``tendency(inputs, time)`` entry point and torch ``model``: everything numpy allocates during the
step is seen by tracemalloc (numpy reports its data buffers there) with the line that allocated
it; the allocations still alive when the predictor receives its inputs are what the coupling
layer made of the state before the model saw it.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import time
import tracemalloc

import numpy as np
import torch

from atmocorrect import _bridge

NUMPY_DOMAIN = getattr(np.lib, "tracemalloc_domain", 389047)
_s: dict = {}


def _module_of(predictor):
    """(name, module) of the torch modules the predictor runs, outermost first."""
    out = []
    model = getattr(predictor, "model", None)
    if isinstance(model, torch.nn.Module):
        out.append(("model", model))
        net = getattr(model, "net", None)
        if isinstance(net, torch.nn.Module):
            out.append(("model.net", net))
    return out


def setup(handle: int) -> None:
    c = _bridge._correctors[handle]
    _s.clear()
    _s["c"] = c
    _s["captured"] = {}
    _s["hooks"] = []
    for name, mod in _module_of(c.predictor):
        _s["captured"][name] = []

        def hook(m, args, _name=name):
            if torch.is_tensor(args[0]):
                _s["captured"][_name].append(args[0].detach().clone())

        _s["hooks"].append(mod.register_forward_pre_hook(hook))


def arm() -> None:
    for h in _s["hooks"]:
        h.remove()
    _s["hooks"] = []
    mods = dict(_module_of(_s["c"].predictor))
    for name in ("model", "model.net"):
        if _s["captured"].get(name):
            _s["ref"] = (name, mods[name], _s["captured"][name])
            break
    else:
        if os.environ.get("ATMOCORRECT_BACKEND", "").strip().lower() == "aot":
            # the libtorch backend: the steps never enter Python, so there is nothing to
            # capture or to time inside them; the host runs with ref=0
            _s["instep"], _s["acc"], _s["instep_on"] = [], [0.0, 0.0], False
            print("BENCH ref " + json.dumps({"backend": "aot", "rank": _s["c"].rank}), flush=True)
            return
        raise RuntimeError("the predictor ran no torch module during the warm-up step")
    name, mod, inputs = _s["ref"]
    # from now on, time the network inside every step (wall and CPU of this thread)
    _s["instep"] = []
    _s["instep_on"] = True

    def pre(m, args):
        if _s["instep_on"]:
            _s["t_pre"] = (time.perf_counter(), time.thread_time())

    _s["acc"] = [0.0, 0.0]

    def post(m, args, out):
        if _s["instep_on"] and "t_pre" in _s:
            w0, c0 = _s.pop("t_pre")
            _s["acc"][0] += time.perf_counter() - w0
            _s["acc"][1] += time.thread_time() - c0

    _s["hooks"] = [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    info = {
        "module": name,
        "calls_per_step": len(inputs),
        "input_shapes": [list(x.shape) for x in inputs[:4]],
        "threads": torch.get_num_threads(),
        "rank": _s["c"].rank,
    }
    print("BENCH ref " + json.dumps(info), flush=True)


def forward() -> None:
    """The network on the captured inputs: what the step costs without the coupling."""
    _name, mod, inputs = _s["ref"]
    _s["instep_on"] = False
    try:
        with torch.inference_mode():
            for x in inputs:
                mod(x)
    finally:
        _s["instep_on"] = True


def mark() -> None:
    """End of a timed step: the network's time in it (all its calls) becomes one entry."""
    _s["instep"].append(tuple(_s["acc"]))
    _s["acc"] = [0.0, 0.0]


def report() -> None:
    """Print the network's in-step times (one line per timed step) and remove the hooks."""
    for h in _s.get("hooks", []):
        h.remove()
    _s["hooks"] = []
    rows = _s.get("instep", [])
    print("BENCH instep " + json.dumps({"rank": _s["c"].rank, "wall": [r[0] for r in rows],
                                        "cpu": [r[1] for r in rows]}), flush=True)


def profile_begin() -> None:
    """Profile the next step with cProfile (timer: this thread's CPU time)."""
    _s["prof"] = cProfile.Profile(time.thread_time)
    _s["prof"].enable()


def profile_end(path: str) -> None:
    prof = _s.pop("prof")
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("cumulative").print_stats(30)
    total = sum(v[2] for v in st.stats.values())  # tottime summed: CPU seconds of the step
    rows = []
    for (fn, line, name), (_cc, nc, tt, ct, _callers) in st.stats.items():
        rows.append({"function": f"{os.path.basename(fn)}:{line}({name})", "calls": nc,
                     "tottime": tt, "cumtime": ct})
    rows.sort(key=lambda r: -r["tottime"])
    if path:
        root, ext = os.path.splitext(path)
        with open(f"{root}.profile.rank{_s['c'].rank}{ext or '.json'}", "w") as fh:
            json.dump({"cpu_seconds": total, "top_self": rows[:25], "text": buf.getvalue()}, fh, indent=1)


# ---------------------------------------------------------------------- allocation probe
def _host_arrays():
    return dict(_s["c"].fields)


def _shares(a, host) -> bool:
    try:
        return any(np.shares_memory(a, h) for h in host.values())
    except Exception:
        return False


def _numpy_new(snapshot, base):
    """Numpy buffers allocated since ``base`` and still alive, grouped by allocating line."""
    flt = [tracemalloc.DomainFilter(True, NUMPY_DOMAIN)]
    diff = snapshot.filter_traces(flt).compare_to(base.filter_traces(flt), "lineno")
    sites = []
    for stat in diff:
        if stat.size_diff <= 0:
            continue
        frame = stat.traceback[0]
        sites.append({
            "site": f"{os.path.relpath(frame.filename, os.path.dirname(os.path.dirname(_bridge.__file__)))}:{frame.lineno}",
            "bytes": int(stat.size_diff),
            "count": int(stat.count_diff),
        })
    return sites


def _describe_inputs(args, host) -> tuple[dict, int, int]:
    """What the predictor is handed: per-field arrays (a mapping) or one batch array.

    Returns (description, bytes of per-field copies of the state, bytes of batch arrays)."""
    desc: dict = {}
    copies = batch = 0
    for i, a in enumerate(args):
        if isinstance(a, dict) or hasattr(a, "items"):
            for n, v in a.items():
                v = np.asarray(v)
                own = _shares(v, host)
                desc[str(n)] = {"nbytes": int(v.nbytes), "dtype": str(v.dtype), "shape": list(v.shape),
                                "is_host_memory": own}
                if not own:
                    copies += int(v.nbytes)
        elif isinstance(a, np.ndarray) and a.size > 1:
            own = _shares(a, host)
            desc[f"arg{i}"] = {"nbytes": int(a.nbytes), "dtype": str(a.dtype), "shape": list(a.shape),
                               "is_host_memory": own, "batch": True}
            if not own:
                batch += int(a.nbytes)
    return desc, copies, batch


def probe_begin() -> None:
    c = _s["c"]
    pred = c.predictor
    host = _host_arrays()
    rec: dict = {"host_bytes": int(sum(a.nbytes for a in host.values())),
                 "host_fields": {n: {"shape": list(a.shape), "dtype": str(a.dtype),
                                     "address": int(a.__array_interface__["data"][0])}
                                 for n, a in host.items()}}
    _s["rec"] = rec
    _s["wrapped"] = []

    def wrap(attr):
        original = getattr(pred, attr)

        def entry(*args, **kwargs):
            if "before_model" not in rec:  # the predictor's first entry in this step
                snap = tracemalloc.take_snapshot()
                _current, peak = tracemalloc.get_traced_memory()
                rec["entry"] = attr
                rec["before_model"] = _numpy_new(snap, _s["base"])
                rec["peak_before_model"] = int(peak - _s["base_current"])
                rec["inputs"], rec["field_copy_bytes"], rec["batch_bytes"] = _describe_inputs(args, host)
                _s["snap_pre"] = snap
            return original(*args, **kwargs)

        setattr(pred, attr, entry)  # an instance attribute: shadows the method for this step
        _s["wrapped"].append(attr)

    for attr in ("tendency", "tendency_batch"):
        if callable(getattr(pred, attr, None)):
            wrap(attr)

    def hook(m, args):
        x = args[0]
        if not torch.is_tensor(x):
            return
        nbytes = int(x.numel() * x.element_size())
        if "model_input" in rec:  # a predictor that runs the network in chunks: add them up
            rec["model_input"]["nbytes"] += nbytes
            rec["model_input"]["calls"] += 1
            return
        snap = tracemalloc.take_snapshot()
        rec["model_input"] = {
            "shape": list(x.shape), "dtype": str(x.dtype), "nbytes": nbytes, "calls": 1,
            "is_host_memory": _shares(x.detach().numpy(), host),
        }
        rec["predictor_before_model"] = _numpy_new(snap, _s.get("snap_pre", _s["base"]))

    mods = _module_of(pred)
    _s["probe_hook"] = mods[0][1].register_forward_pre_hook(hook) if mods else None
    tracemalloc.start(4)
    _s["base"] = tracemalloc.take_snapshot()
    _s["base_current"] = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()


def _send_bytes(c) -> int:
    """Bytes of the state the halo exchange packed into temporary buffers during the probed
    step, as counted by the exchange itself (strips MPI could not read in place)."""
    dec = getattr(c, "_decomposition", None)
    return int(getattr(dec, "last_exchange_copy_bytes", 0) or 0)


def probe_end(path: str) -> None:
    tracemalloc.stop()
    c = _s["c"]
    pred = c.predictor
    for attr in _s.get("wrapped", []):
        vars(pred).pop(attr, None)
    if _s.get("probe_hook") is not None:
        _s["probe_hook"].remove()
    rec = _s["rec"]
    rec["rank"] = c.rank
    rec["halo_send_bytes"] = _send_bytes(c)
    alive = sum(s["bytes"] for s in rec.get("before_model", []))
    # what the coupling layer allocated and still holds when the predictor takes over, less the
    # batch it hands over (the model input, when the halo exchange fills it directly)
    rec["state_copy_bytes_alive_at_predictor"] = int(max(0, alive - rec.get("batch_bytes", 0)))
    rec["addresses_unchanged"] = all(
        int(a.__array_interface__["data"][0]) == rec["host_fields"][n]["address"]
        for n, a in c.fields.items()
    )
    if path:
        root, ext = os.path.splitext(path)
        with open(f"{root}.rank{c.rank}{ext or '.json'}", "w") as fh:
            json.dump(rec, fh, indent=1)
