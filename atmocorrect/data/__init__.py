"""Reading real climate data through xarray: netCDF and GRIB (cfgrib), coordinates, calendars,
units, and a reference put on a simulation's grid.

Modules, one concern each:

* :mod:`~atmocorrect.data.readers`   open netCDF/GRIB/zarr; corrupted or truncated files
* :mod:`~atmocorrect.data.coords`    lat/latitude, north-to-south, 0-360 vs -180-180, expver
* :mod:`~atmocorrect.data.timeaxis`  cftime calendars, frequencies, periods, seasons
* :mod:`~atmocorrect.data.conform`   units checked against values and converted
* :mod:`~atmocorrect.data.regrid`    the reference interpolated to the simulation's points
* :mod:`~atmocorrect.data.pairs`     a simulation and its reference, aligned
* :mod:`~atmocorrect.data.samples`   where the shared real sample data are

Example
-------
>>> from atmocorrect.data import PairConfig
>>> PairConfig(("tas", "pr")).reference_candidates("pr")
('tp', 'pr', 'rr', 'mtpr', 'avg_tprate')
"""

from __future__ import annotations

from .pairs import Pair, PairConfig, load_pair
from .readers import check_grib, open_dataset, read_variable

__all__ = ["Pair", "PairConfig", "check_grib", "load_pair", "open_dataset", "read_variable"]
