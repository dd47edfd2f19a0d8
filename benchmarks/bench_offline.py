"""Offline correction: ``atmocorrect correct`` beside ibicus QDM, time and peak memory.

Both sides run as commands in their own processes (imports included, as a user runs them), file
in and file out, on the held-out 2005-2014 part of the shared daily simulation (1x) and on a copy
with its points tiled 20 times (20x); peak RSS is each process's own (RUSAGE_CHILDREN of a
wrapper that runs only that command).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bench_common as bc

_RSS_WRAPPER = (
    "import json, resource, subprocess, sys, time; t = time.perf_counter(); "
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "print(json.dumps({'rc': p.returncode, 'wall': time.perf_counter() - t, "
    "'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0, "
    "'stdout': p.stdout[-2000:], 'stderr': p.stderr[-2000:]}))"
)


def measured(cmd: list[str], timeout: float = 600) -> dict:
    proc = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *cmd], capture_output=True, text=True,
                          timeout=timeout)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {res['stderr'][-1500:]}")
    return res


def sample_dir() -> Path:
    """$ATMOCORRECT_SAMPLE_DATA, else ../shared/data beside the repository (as the tests do;
    the installed package cannot know where the repository is)."""
    import os

    d = Path(os.environ.get("ATMOCORRECT_SAMPLE_DATA") or bc.REPO.parent / "shared" / "data")
    if not (d / offline_qdm_files()[0]).is_file():
        raise bc.Skip(f"the shared daily pair is not at {d} (set ATMOCORRECT_SAMPLE_DATA to the "
                      "folder holding era5/ and cmip6/)")
    return d


def offline_qdm_files() -> tuple[str, str]:
    import offline_qdm

    return offline_qdm.ERA5, offline_qdm.SIM


def correct_cli() -> tuple[str, str]:
    """(the atmocorrect executable, its `correct --help`), or Skip if the command is not there."""
    exe = str(bc.VENV_BIN / "atmocorrect")
    proc = subprocess.run([exe, "correct", "--help"], capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or "--method" not in text or "--input" not in text:
        raise bc.Skip("`atmocorrect correct` is not implemented yet (atmocorrect/commands/correct.py "
                      "raises 'not implemented'; issue 5): nothing to time against ibicus QDM")
    return exe, text


def qdm(data: Path, inp: Path, out: Path) -> dict:
    res = measured([sys.executable, str(bc.BENCH / "offline_qdm.py"), "--data", str(data),
                    "--input", str(inp), "--output", str(out)])
    inner = json.loads(res["stdout"].strip().splitlines()[-1])
    return {"wall": res["wall"], "peak_rss_mb": res["peak_rss_mb"], "inner_seconds": inner["seconds"]}


def offline(reps: int = 2, scale: int = 20, chunk_points: int = 4, train_steps: int = 100) -> dict:
    """``atmocorrect correct --method ml`` against ibicus QDM, and its peak RSS at 1x and 20x.

    The ratio's denominator is ibicus QDM through the same command (``--method qdm``: the same
    reading, chunking and writing, so the ratio compares the methods); the stand-alone ibicus
    script (offline_qdm.py) is measured too, as the figure a user of ibicus alone would see.
    The 20x input repeats the held-out simulation's 4 points 20 times along longitude (0.01
    degree apart, all inside the ERA5 box); the ml checkpoint is trained (briefly: the figures
    here are times and memory, not skill) on the historical run tiled the same way, so that it
    knows every point of both inputs.
    """
    import offline_qdm

    data = sample_dir()
    work = bc.scratch("offline-")
    era5 = data / offline_qdm.ERA5
    hist = data / offline_qdm.SIM
    inputs = {1: offline_qdm.write_input(data, work / "in1.nc", 1),
              scale: offline_qdm.write_input(data, work / f"in{scale}.nc", scale)}
    res: dict = {"qdm_script": {}, "ml": {}, "scale": scale, "chunk_points": chunk_points}
    for s, path in inputs.items():  # the stand-alone ibicus reference, always measured
        res["qdm_script"][f"{s}x"] = qdm(data, path, work / f"qdm{s}.nc")
    try:
        exe, help_text = correct_cli()
    except bc.Skip as exc:
        res["skip"] = str(exc)
        return res
    from atmocorrect.data.pairs import PairConfig
    from atmocorrect.offline.config import TrainConfig
    from atmocorrect.offline.train import train_offline

    hist_tiled = offline_qdm.write_input(data, work / f"hist{scale}.nc", scale, period=("1979", "2014"))
    ckpt = work / "ml"
    t0 = __import__("time").perf_counter()
    train_offline([str(hist_tiled)], [str(era5)], str(ckpt), PairConfig(("tas",)),
                  TrainConfig(steps=train_steps, threads=1))
    res["train_seconds"] = __import__("time").perf_counter() - t0
    chunk = ["--chunk-points", str(chunk_points)] if "--chunk-points" in help_text else []
    common = ["--threads", "1", "--overwrite", "--quiet", *chunk]
    res["chunk_option"] = " ".join(chunk) or "the command's default chunking"

    def ml(path: Path, out: Path) -> dict:
        return measured([exe, "correct", "--method", "ml", "--model", str(ckpt), "--input", str(path),
                         "--output", str(out), *common])

    def cli_qdm(path: Path, out: Path) -> dict:
        return measured([exe, "correct", "--method", "qdm", "--reference", str(era5), "--historical",
                         str(hist), "--calibration", "1979-2004", "--input", str(path),
                         "--output", str(out), *common])

    ml_t, qdm_t = [], []
    for r in range(reps):  # ml qdm, qdm ml, ...
        for kind in (("ml", "qdm") if r % 2 == 0 else ("qdm", "ml")):
            if kind == "ml":
                ml_t.append(ml(inputs[1], work / "ml1.nc")["wall"])
            else:
                qdm_t.append(cli_qdm(inputs[1], work / "cliqdm1.nc")["wall"])
    for s, path in inputs.items():
        m = ml(path, work / f"ml{s}.nc")
        res["ml"][f"{s}x"] = {"wall": m["wall"], "peak_rss_mb": m["peak_rss_mb"]}
    res["ml_seconds_1x"] = ml_t
    res["qdm_cli_seconds_1x"] = qdm_t
    res["offline_time_ratio_vs_ibicus_qdm"] = bc.median_of_ratios(ml_t, qdm_t)
    res["ratio_vs_qdm_script"] = bc.median(ml_t) / res["qdm_script"]["1x"]["wall"]
    res["offline_peak_rss_mb"] = res["ml"][f"{scale}x"]["peak_rss_mb"]
    res["rss_growth_1x_to_20x"] = res["ml"][f"{scale}x"]["peak_rss_mb"] / res["ml"]["1x"]["peak_rss_mb"]
    return res
