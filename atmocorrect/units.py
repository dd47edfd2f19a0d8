"""Unit names and the few conversions a climate modeller meets every day.

>>> canonical("degC"), canonical("kelvin")
('degC', 'K')
>>> convert(273.15, "K", "degC")
0.0
>>> convert(0.85, "(0 - 1)", "%")  # ERA5 cloud cover as a CMIP percentage
85.0
>>> round(accumulation_to_flux(0.00864, "m", 86400.0), 6)  # 8.64 mm a day
0.0001
>>> accumulation_to_flux(1.8e6, "J m**-2", 3600.0)  # ERA5 hourly ssrd: 500 W m-2 in the hour
500.0
"""

from __future__ import annotations

import numpy as np

from .errors import FieldError

_ALIASES = {
    "K": ("k", "kelvin", "degk", "deg_k", "degrees_k"),
    "degC": ("degc", "c", "celsius", "deg_c", "degree_celsius", "degrees_celsius", "°c"),
    "1": ("", "1", "dimensionless", "none", "-", "(0 - 1)", "0-1", "fraction"),
    "%": ("%", "percent", "percentage", "pct"),
    "Pa": ("pa", "pascal"),
    "hPa": ("hpa", "mbar", "millibar"),
    "m": ("m", "metre", "meter", "metres", "meters"),
    "kg m-2 s-1": ("kg m-2 s-1", "kg/m2/s", "kg m**-2 s**-1", "kg/m^2/s", "mm s-1", "mm/s"),
    "mm day-1": ("mm day-1", "mm/day", "mm d-1", "kg m-2 day-1", "kg m-2 d-1", "mm/d"),
    "m day-1": ("m day-1", "m/day", "m d-1", "m of water equivalent per day"),
    "mm": ("mm", "millimetre", "millimeter", "millimetres", "millimeters", "kg m-2", "kg m**-2"),
    "m of water equivalent": ("m of water equivalent", "m water equivalent"),
    "m s-1": ("m s-1", "m/s", "m s**-1"),
    "kg kg-1": ("kg kg-1", "kg/kg", "kg kg**-1"),
    "W m-2": ("w m-2", "w/m2", "w m**-2", "w/m^2", "w m^-2", "w/m**2"),
    # energy per area accumulated over a period (ERA5 ssrd, strd: J m-2 over the hour)
    "J m-2": ("j m-2", "j m**-2", "j/m2", "j/m^2", "j m^-2", "j/m**2", "joule m-2"),
}
_LOOKUP = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
_LOOKUP.update({name.lower(): name for name in _ALIASES})


def _udunits_key(key: str) -> str:
    """A lower-case unit string in one UDUNITS spelling: products by spaces (``kg.m-2.s-1``,
    ``kg*m-2``), exponents without ``**``/``^`` (``m^-2``), divisions as negative exponents
    (``kg/(m2 s)``), temperature names without underscores (``degree_C``, ``degrees C``).

    >>> _udunits_key("kg.m^-2.s^-1"), _udunits_key("kg/(m2 s)"), _udunits_key("degrees_c")
    ('kg m-2 s-1', 'kg m-2 s-1', 'degc')
    """
    import re

    text = key.replace("**", "").replace("^", "").replace("·", " ")
    text = re.sub(r"(?<=[a-z0-9)])[.*](?=[a-z(])", " ", text)  # kg.m-2, kg*m-2
    temperature = re.fullmatch(r"(?:deg|degs|degree|degrees)[ _]?(c|k|celsius|kelvin)", text)
    if temperature:
        return "degc" if temperature.group(1).startswith("c") else "k"
    terms: list[str] = []
    sign = 1
    for part in re.findall(r"/|\([^)]*\)|[^\s/()]+", text):
        if part == "/":
            sign = -1
            continue
        for token in part.strip("()").split():
            m = re.fullmatch(r"([a-z%]+)(-?\d+)?", token)
            if m is None:
                return key
            power = sign * int(m.group(2) or 1)
            terms.append(m.group(1) + ("" if power == 1 else str(power)))
    return " ".join(terms)  # a/b/c, a/b c: every term after a slash divides


def canonical(units: str | None) -> str:
    """The canonical spelling of a unit string (unknown strings are returned stripped).

    UDUNITS spellings of the same units are recognised (:func:`_udunits_key`):

    >>> [canonical(u) for u in ("degree_C", "degrees C", "deg_C", "degK", "kg.m-2.s-1",
    ...                         "kg m^-2 s^-1", "mm/day", "kg/(m2 s)")]
    ['degC', 'degC', 'degC', 'K', 'kg m-2 s-1', 'kg m-2 s-1', 'mm day-1', 'kg m-2 s-1']
    """
    if units is None:
        return "1"
    key = " ".join(str(units).strip().split()).lower()
    found = _LOOKUP.get(key)
    if found is None:
        found = _LOOKUP.get(_udunits_key(key))
    return found if found is not None else str(units).strip()


def same(a: str | None, b: str | None) -> bool:
    return canonical(a) == canonical(b)


_AFFINE: dict[tuple[str, str], tuple[float, float]] = {
    ("K", "degC"): (1.0, -273.15),
    ("degC", "K"): (1.0, 273.15),
    ("Pa", "hPa"): (0.01, 0.0),
    ("hPa", "Pa"): (100.0, 0.0),
    ("kg m-2 s-1", "mm day-1"): (86400.0, 0.0),
    ("mm day-1", "kg m-2 s-1"): (1.0 / 86400.0, 0.0),
    ("m day-1", "kg m-2 s-1"): (1000.0 / 86400.0, 0.0),
    ("kg m-2 s-1", "m day-1"): (86400.0 / 1000.0, 0.0),
    ("m day-1", "mm day-1"): (1000.0, 0.0),
    ("mm day-1", "m day-1"): (0.001, 0.0),
    # fractions (relative humidity, cloud cover, sea-ice concentration): ERA5 writes "(0 - 1)"
    ("1", "%"): (100.0, 0.0),
    ("%", "1"): (0.01, 0.0),
}

#: Depths of water accumulated over a period (ERA5 ``tp`` is in m), in kg m-2 per unit.
_ACCUMULATION_KG_M2 = {"m": 1000.0, "m of water equivalent": 1000.0, "mm": 1.0}

#: Energy per area accumulated over a period (ERA5 radiation ``ssrd``, ``strd``), in J m-2 per
#: unit: divided by the period in seconds it is the mean flux in W m-2.
_ACCUMULATION_J_M2 = {"J m-2": 1.0}

#: Units of the mean flux an accumulated amount becomes over its period.
WATER_FLUX, ENERGY_FLUX = "kg m-2 s-1", "W m-2"

#: Values outside these ranges are not what the units say (e.g. degC labelled K); the
#: ranges are wide on purpose: they catch mislabelled units, not extreme weather.
PLAUSIBLE = {
    "K": (150.0, 350.0),
    "degC": (-120.0, 75.0),
    "Pa": (100.0, 1.2e5),
    "hPa": (1.0, 1200.0),
    "kg m-2 s-1": (-1e-6, 0.05),
    "mm day-1": (-0.1, 4000.0),
    # radiation and heat fluxes: downward radiation is 0 .. 1361 W m-2 (the solar constant,
    # +3.4 % at perihelion); turbulent and net fluxes take either sign. J m-2 are checked
    # once converted over their period (0 .. 1500 W m-2 is 0 .. 5.4e6 J m-2 per hour)
    "W m-2": (-1000.0, 1500.0),
}


def convert(values, from_units: str, to_units: str, what: str = "values", *,
            difference: bool = False):
    """Convert between units related by a scale and offset; raise naming both otherwise.
    ``difference``: the values are differences (a temperature range), which take the scale
    but not the offset (a range of 8 K is 8 degC).

    >>> convert(8.0, "K", "degC"), convert(8.0, "K", "degC", difference=True)
    (-265.15, 8.0)
    """
    src, dst = canonical(from_units), canonical(to_units)
    if src == dst:
        return values
    try:
        scale, offset = _AFFINE[(src, dst)]
    except KeyError:
        raise FieldError(
            f"{what}: cannot convert units {from_units!r} to {to_units!r}"
        ) from None
    out = values * scale + (0.0 if difference else offset)
    return out.astype(values.dtype) if isinstance(values, np.ndarray) else out


def is_accumulation(units: str | None) -> bool:
    """True for depths/masses of water accumulated over a period (``m``, ``mm``, ``kg m-2``)."""
    return canonical(units) in _ACCUMULATION_KG_M2


def is_energy_accumulation(units: str | None) -> bool:
    """True for energy per area accumulated over a period (``J m-2``: ERA5 radiation).

    >>> is_energy_accumulation("J m**-2"), is_energy_accumulation("W m-2")
    (True, False)
    """
    return canonical(units) in _ACCUMULATION_J_M2


def accumulation_flux_units(units: str | None) -> str | None:
    """The units of the mean flux an amount in ``units`` accumulated over a period becomes:
    ``kg m-2 s-1`` for water, ``W m-2`` for energy; None for anything else.

    >>> accumulation_flux_units("m"), accumulation_flux_units("J m-2"), accumulation_flux_units("K")
    ('kg m-2 s-1', 'W m-2', None)
    """
    if is_accumulation(units):
        return WATER_FLUX
    if is_energy_accumulation(units):
        return ENERGY_FLUX
    return None


def accumulation_to_flux(values, units: str, period_seconds: float, what: str = "values"):
    """An amount accumulated over ``period_seconds`` as its mean flux: water (``m``, ``mm``,
    ``kg m-2``) in kg m-2 s-1, energy (``J m-2``) in W m-2 (:func:`accumulation_flux_units`).

    ERA5 ``tp`` is in m and ``ssrd``/``strd`` in J m-2: per hour in hourly data, per day in
    monthly means.
    """
    key = canonical(units)
    per_unit = _ACCUMULATION_KG_M2.get(key, _ACCUMULATION_J_M2.get(key))
    if per_unit is None:
        raise FieldError(
            f"{what}: units {units!r} are not an accumulated amount of water or energy")
    if not period_seconds or period_seconds <= 0:
        raise FieldError(f"{what}: accumulation period must be positive, got {period_seconds}")
    out = values * (per_unit / float(period_seconds))
    return out.astype(values.dtype) if isinstance(values, np.ndarray) else out


def plausible_range(units: str | None) -> tuple[float, float] | None:
    """The range values in these units should lie in, or None when there is no check."""
    return PLAUSIBLE.get(canonical(units))
