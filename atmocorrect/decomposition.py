"""Block domain decomposition and the halo exchange a model's context needs.

Every rank owns a rectangular block ``[offset, offset + shape)`` of the global index space. A
model that looks ``halo[d]`` points beyond its block along the leading dimension ``d`` gets an
extended array filled from whichever ranks own those points (periodic dimensions wrap; others
replicate the edge value), so its results do not depend on how the domain was split.

>>> d = Decomposition(None, global_shape=(8,), offset=(0,), shape=(8,))
>>> import numpy as np
>>> d.extend({"x": np.arange(8.0)}, halo=(2,), periodic=(True,))["x"]
array([6., 7., 0., 1., 2., 3., 4., 5., 6., 7., 0., 1.])
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import GridError

Box = tuple[tuple[int, int], ...]  # per dim [lo, hi)


def _slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(lo, hi) for lo, hi in box)


def _intersect(a: Box, b: Box) -> Box | None:
    out = []
    for (alo, ahi), (blo, bhi) in zip(a, b, strict=True):
        lo, hi = max(alo, blo), min(ahi, bhi)
        if lo >= hi:
            return None
        out.append((lo, hi))
    return tuple(out)


class Decomposition:
    """The blocks of all ranks, gathered once; ``comm`` is an mpi4py communicator or None."""

    def __init__(
        self,
        comm,
        global_shape: Sequence[int],
        offset: Sequence[int],
        shape: Sequence[int],
    ) -> None:
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.global_shape = tuple(int(g) for g in global_shape)
        if len(offset) != len(self.global_shape) or len(shape) < len(self.global_shape):
            raise GridError(
                f"rank {self.rank}: local_offset {tuple(offset)} and array shape {tuple(shape)} "
                f"do not match global_shape {self.global_shape}"
            )
        mine = (tuple(int(o) for o in offset), tuple(int(s) for s in shape[: len(offset)]))
        blocks = comm.allgather(mine) if comm is not None else [mine]
        self.blocks: list[tuple[tuple[int, ...], tuple[int, ...]]] = blocks
        self._check_blocks()
        self._plans: dict[tuple, list] = {}
        self._datatypes: dict[tuple, object] = {}
        self._pending_unpack: list[tuple[np.ndarray, np.ndarray]] = []
        self.last_exchange_copy_bytes = 0

    @property
    def offset(self) -> tuple[int, ...]:
        return self.blocks[self.rank][0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.blocks[self.rank][1]

    def _check_blocks(self) -> None:
        volume = 0
        for r, (off, shp) in enumerate(self.blocks):
            for d, (o, s, g) in enumerate(zip(off, shp, self.global_shape, strict=True)):
                if o < 0 or s <= 0 or o + s > g:
                    raise GridError(
                        f"rank {r}: block offset {off} shape {shp} leaves the global domain "
                        f"{self.global_shape} along dimension {d + 1}"
                    )
            volume += int(np.prod(shp))
        if volume != int(np.prod(self.global_shape)):
            raise GridError(
                f"the blocks of {self.size} rank(s) cover {volume} points but global_shape "
                f"{self.global_shape} has {int(np.prod(self.global_shape))}: blocks overlap or leave gaps"
            )

    def _box(self, rank: int) -> Box:
        off, shp = self.blocks[rank]
        return tuple((o, o + s) for o, s in zip(off, shp, strict=True))

    def _pieces_needed_by(self, rank: int, halo: tuple[int, ...], periodic: tuple[bool, ...]):
        """(source rank, source box in source-local coords, destination box in extended coords)."""
        nd = len(self.global_shape)
        h = tuple(halo) + (0,) * (nd - len(halo))
        per = tuple(periodic) + (False,) * (nd - len(periodic))
        box = self._box(rank)
        ext = tuple((lo - hd, hi + hd) for (lo, hi), hd in zip(box, h, strict=True))
        shifts_per_dim = [
            (-g, 0, g) if (per[d] and h[d] > 0) else (0,) for d, g in enumerate(self.global_shape)
        ]
        pieces = []
        for shift in itertools.product(*shifts_per_dim):
            for src in range(self.size):
                sbox = tuple((lo + s, hi + s) for (lo, hi), s in zip(self._box(src), shift, strict=True))
                inter = _intersect(ext, sbox)
                if inter is None:
                    continue
                src_local = tuple((lo - sb[0], hi - sb[0]) for (lo, hi), sb in zip(inter, sbox, strict=True))
                dst_local = tuple((lo - e[0], hi - e[0]) for (lo, hi), e in zip(inter, ext, strict=True))
                pieces.append((src, src_local, dst_local))
        return pieces

    def _plan(self, halo: tuple[int, ...], periodic: tuple[bool, ...]):
        key = (halo, periodic)
        if key not in self._plans:
            for d, hd in enumerate(halo):
                if periodic and d < len(periodic) and periodic[d] and hd > self.global_shape[d]:
                    raise GridError(
                        f"halo {hd} along dimension {d + 1} exceeds the global extent {self.global_shape[d]}"
                    )
            recvs = self._pieces_needed_by(self.rank, halo, periodic)
            sends = []
            for dst in range(self.size):
                if dst == self.rank:
                    continue
                mine = [p for p in self._pieces_needed_by(dst, halo, periodic) if p[0] == self.rank]
                for tag, (_src, src_box, _dst_box) in enumerate(mine):
                    sends.append((dst, tag, src_box))
            recv_tagged = []
            counters: dict[int, int] = {}
            for src, src_box, dst_box in recvs:
                if src == self.rank:
                    recv_tagged.append((src, -1, src_box, dst_box))
                    continue
                tag = counters.get(src, 0)
                counters[src] = tag + 1
                recv_tagged.append((src, tag, src_box, dst_box))
            self._plans[key] = (recv_tagged, sends)
        return self._plans[key]

    def extend(
        self,
        fields: Mapping[str, np.ndarray],
        halo: tuple[int, ...],
        periodic: tuple[bool, ...] = (),
        out: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Each field's local block extended by ``halo`` points (collective when halo > 0).

        ``out`` (optional) gives, per field, the array to fill (any dtype and strides, e.g. a
        view of a model's float32 input batch): the block is then copied once, straight from
        the host's memory into it, instead of into a new array of the host's dtype.

        Nothing else is copied: the interior goes into the extended array first, and the halo
        strips travel between ranks' extended arrays through MPI derived datatypes that
        describe the strided memory in place (no packing into temporary buffers).
        ``last_exchange_copy_bytes`` counts what had to be packed anyway (arrays MPI cannot
        describe, e.g. negative strides): 0 on every path the library itself takes.
        """
        self.last_exchange_copy_bytes = 0
        if not any(halo):
            return dict(fields)
        recvs, sends = self._plan(tuple(halo), tuple(periodic))
        result: dict[str, np.ndarray] = {}
        for index, (name, local) in enumerate(fields.items()):
            h = tuple(halo) + (0,) * (local.ndim - len(halo))
            shape = tuple(s + 2 * hd for s, hd in zip(local.shape, h, strict=True))
            if out is not None and name in out:
                ext = out[name]
                if ext.shape != shape:
                    raise GridError(f"extend: buffer for {name!r} has shape {ext.shape}, expected {shape}")
            else:
                ext = np.empty(shape, local.dtype)
            # this rank's own points (the interior, and periodic wraps of its own block) first:
            # the strips other ranks need are then sent from ext, already in the model's dtype
            for src, _tag, src_box, dst_box in recvs:
                if src == self.rank:
                    ext[_slices(dst_box)] = local[_slices(src_box)]
            requests = []
            tag_base = index * 4096
            for src, tag, _src_box, dst_box in recvs:
                if src != self.rank:
                    buf = self._mpi_buffer(ext[_slices(dst_box)], writable=True)
                    requests.append(self.comm.Irecv(buf, source=src, tag=tag_base + tag))
            for dst, tag, src_box in sends:
                strip = ext[tuple(slice(lo + hd, hi + hd) for (lo, hi), hd in zip(src_box, h, strict=False))]
                requests.append(self.comm.Isend(self._mpi_buffer(strip), dest=dst, tag=tag_base + tag))
            if requests:
                from mpi4py import MPI

                MPI.Request.Waitall(requests)
            self._unpack_pending()
            self._replicate_edges(ext, h, periodic)
            result[name] = ext
        return result

    def _mpi_buffer(self, view: np.ndarray, writable: bool = False):
        """``[memory, 1, datatype]`` for a strided numpy view, read or written in place.

        The datatype nests one ``hvector`` per dimension (the last innermost), so sender and
        receiver walk their boxes in the same C order whatever their strides. Datatypes are
        cached by (dtype, shape, strides): a model's boxes repeat every step.
        """
        from mpi4py import MPI

        if view.size == 0 or any(s < 0 for s in view.strides):
            packed = np.ascontiguousarray(view)
            self.last_exchange_copy_bytes += int(packed.nbytes)
            if writable:
                self._pending_unpack.append((packed, view))
            return packed
        key = (view.dtype.str, view.shape, view.strides)
        dtype = self._datatypes.get(key)
        if dtype is None:
            dtype = MPI.Datatype.fromcode(view.dtype.char)
            for n, stride in zip(reversed(view.shape), reversed(view.strides), strict=True):
                dtype = dtype.Create_hvector(n, 1, stride)
            dtype.Commit()
            self._datatypes[key] = dtype
        span = sum((n - 1) * s for n, s in zip(view.shape, view.strides, strict=True)) + view.itemsize
        address = view.__array_interface__["data"][0]
        memory = MPI.buffer.fromaddress(address, span, readonly=not writable)
        return [memory, 1, dtype]

    def _unpack_pending(self) -> None:
        for packed, view in self._pending_unpack:
            view[...] = packed
        self._pending_unpack.clear()

    def _replicate_edges(self, ext: np.ndarray, h: tuple[int, ...], periodic: tuple[bool, ...]) -> None:
        for d, hd in enumerate(h):
            if hd == 0 or (d < len(periodic) and periodic[d]):
                continue
            lo_global = self.offset[d] - hd
            hi_global = self.offset[d] + self.shape[d] + hd
            n = ext.shape[d]
            below = max(0, -lo_global)
            above = max(0, hi_global - self.global_shape[d])
            index = [slice(None)] * ext.ndim
            if below:  # disjoint slices of one array: numpy copies without a temporary
                src = list(index)
                src[d] = slice(below, below + 1)
                index[d] = slice(0, below)
                ext[tuple(index)] = ext[tuple(src)]
            if above:
                src = list(index)
                src[d] = slice(n - above - 1, n - above)
                index[d] = slice(n - above, n)
                ext[tuple(index)] = ext[tuple(src)]

    def interior(self, ext: np.ndarray, halo: tuple[int, ...]) -> np.ndarray:
        h = tuple(halo) + (0,) * (ext.ndim - len(halo))
        return ext[tuple(slice(hd, s - hd) for s, hd in zip(ext.shape, h, strict=True))]
