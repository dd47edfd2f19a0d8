"""Where the shared real sample data lives (ERA5, CMIP6 and GRIB files beside the project).

The default is the ``shared/data`` folder beside the repository root (the source checkout the
package was imported from, else the current directory's project); the environment variable
``ATMOCORRECT_SAMPLE_DATA`` overrides it.

Example
-------
>>> import os
>>> os.environ["ATMOCORRECT_SAMPLE_DATA"] = "/nonexistent"
>>> sample_data_dir() is None
True
>>> del os.environ["ATMOCORRECT_SAMPLE_DATA"]
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ATMOCORRECT_SAMPLE_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]

#: The files of the daily pair (ERA5 t2m vs IPSL-CM6A-LR tas) and the monthly pair, relative to
#: the sample-data directory.
DAILY_REFERENCE = "era5/era5_daily_mean_2m_temperature_1979_2015.nc"
DAILY_HISTORICAL = "cmip6/tas_day_IPSL-CM6A-LR_historical_r1i1p1f1_gr_19790101-20141231_v20190614.nc"
DAILY_SCENARIO = "cmip6/tas_day_IPSL-CM6A-LR_ssp585_r1i1p1f1_gr_20500101-20701231_v20190903.nc"
MONTHLY_REFERENCE = "era5/era5_monthly_t2m_msl_tp_1979-2022.nc"
MONTHLY_HISTORICAL = {
    v: f"cmip6/{v}_Amon_IPSL-CM5A2-INCA_historical_r1i1p1f1_gr_19790116-20141216_v20200729.nc"
    for v in ("tas", "pr", "psl")
}
GRIB_MEMBERS = "era5/era5-levels-members.grib"
GRIB_LEVELS = "era5/ERA5_levels.grib"
GRIB_CORRUPTED = "bad/era5-levels-corrupted.grib"


def default_sample_dir() -> Path:
    """``<repo>/../shared/data``: the folder beside the repository root.

    An installed package (site-packages) has no repository around it; then the project in the
    current directory is meant (``./../shared/data``), as when `make` runs from the checkout.
    """
    if (REPO_ROOT / "pyproject.toml").is_file():
        return REPO_ROOT.parent / "shared" / "data"
    return Path.cwd().resolve().parent / "shared" / "data"


def sample_data_dir() -> Path | None:
    """The sample-data directory if it exists (``$ATMOCORRECT_SAMPLE_DATA`` first), else None."""
    override = os.environ.get(ENV_VAR)
    path = Path(override) if override else default_sample_dir()
    return path if path.is_dir() else None


def missing_reason() -> str:
    """Why the sample data cannot be used (for ``pytest.skip`` and error messages)."""
    override = os.environ.get(ENV_VAR)
    where = override if override else str(default_sample_dir())
    return (
        f"real sample data not found at {where}; set {ENV_VAR} to the folder holding "
        "era5/, cmip6/ and bad/ (see shared/data/README.md)"
    )
