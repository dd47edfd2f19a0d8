"""Unit names and the few conversions a climate modeller meets every day.

>>> canonical("degC"), canonical("kelvin")
('degC', 'K')
>>> convert(273.15, "K", "degC")
0.0
"""

from __future__ import annotations

import numpy as np

from .errors import FieldError

_ALIASES = {
    "K": ("k", "kelvin", "degk", "deg_k", "degrees_k"),
    "degC": ("degc", "c", "celsius", "deg_c", "degree_celsius", "degrees_celsius", "°c"),
    "1": ("", "1", "dimensionless", "none", "-"),
    "Pa": ("pa", "pascal"),
    "hPa": ("hpa", "mbar", "millibar"),
    "m": ("m", "metre", "meter", "metres", "meters"),
    "kg m-2 s-1": ("kg m-2 s-1", "kg/m2/s", "kg m**-2 s**-1", "kg/m^2/s", "mm s-1", "mm/s"),
    "mm day-1": ("mm day-1", "mm/day", "mm d-1"),
    "m s-1": ("m s-1", "m/s", "m s**-1"),
    "kg kg-1": ("kg kg-1", "kg/kg", "kg kg**-1"),
}
_LOOKUP = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
_LOOKUP.update({name.lower(): name for name in _ALIASES})


def canonical(units: str | None) -> str:
    """The canonical spelling of a unit string (unknown strings are returned stripped)."""
    if units is None:
        return "1"
    key = " ".join(str(units).strip().split()).lower()
    return _LOOKUP.get(key, str(units).strip())


def same(a: str | None, b: str | None) -> bool:
    return canonical(a) == canonical(b)


_AFFINE: dict[tuple[str, str], tuple[float, float]] = {
    ("K", "degC"): (1.0, -273.15),
    ("degC", "K"): (1.0, 273.15),
    ("Pa", "hPa"): (0.01, 0.0),
    ("hPa", "Pa"): (100.0, 0.0),
    ("kg m-2 s-1", "mm day-1"): (86400.0, 0.0),
    ("mm day-1", "kg m-2 s-1"): (1.0 / 86400.0, 0.0),
}


def convert(values, from_units: str, to_units: str, what: str = "values"):
    """Convert between units related by a scale and offset; raise naming both otherwise."""
    src, dst = canonical(from_units), canonical(to_units)
    if src == dst:
        return values
    try:
        scale, offset = _AFFINE[(src, dst)]
    except KeyError:
        raise FieldError(
            f"{what}: cannot convert units {from_units!r} to {to_units!r}"
        ) from None
    out = values * scale + offset
    return out.astype(values.dtype) if isinstance(values, np.ndarray) else out
