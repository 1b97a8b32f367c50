"""Sweep one preset on all cores and print its table: ``python -m mfn_core PRESET.yaml``."""

from __future__ import annotations

import argparse
import sys
import time

import polars as pl

from mfn_core.errors import ParamError
from mfn_core.presets import load_preset
from mfn_core.sweep import default_workers, run_sweep

SHOWN = [
    "sim_id",
    "seed",
    "alpha",
    "growth_events",
    "lyapunov",
    "V_mean",
    "V_std",
    "D_box",
    "D_box_rel",
    "N_clusters_rel",
    "H_entropy",
    "duration_s",
    "status",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mfn_core", description=__doc__)
    parser.add_argument("preset", help="path to a preset YAML file")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    args = parser.parse_args(argv)
    try:
        preset = load_preset(args.preset)
        start = time.perf_counter()
        table = run_sweep(preset, workers=args.workers)
    except ParamError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    elapsed = time.perf_counter() - start
    failed = table.filter(pl.col("status") != "ok").height
    with pl.Config(
        tbl_rows=table.height, tbl_cols=len(SHOWN), tbl_width_chars=200, float_precision=4
    ):
        sys.stdout.write(f"{table.select(SHOWN)}\n")
    sys.stdout.write(
        f"preset {preset.name}: {table.height} runs ({failed} failed) of "
        f"{preset.grid_size}x{preset.grid_size}x{preset.steps} in {elapsed:.2f} s on "
        f"{args.workers or default_workers()} workers, "
        f"{preset.cell_steps / elapsed / 1e6:.0f} million cell-steps/s\n"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
