"""Where the warehouse and the catalog may be placed, told from their paths alone.

What a catalog path holds (this product's catalog, another database, a text file) is
told by opening it: mfn_pipeline.lib.catalog.inspect_catalog.
"""

from __future__ import annotations

import os
from pathlib import Path

from mfn_pipeline.lib.warehouse import VIEWS

# DuckDB reads these as a glob pattern in a file name, so a path holding one could
# make a view read another folder's files.
GLOB_CHARACTERS = frozenset("*?[]{}")


def glob_refusal(field: str, location: str) -> str | None:
    """Why ``location`` cannot be used: it holds characters DuckDB reads as a glob."""
    found = sorted(GLOB_CHARACTERS & set(location))
    if not found:
        return None
    return (
        f"{field} = {location!r} contains {' '.join(found)}, which DuckDB reads as a file "
        "pattern (its views would read other files); allowed: a path without any of "
        f"{' '.join(sorted(GLOB_CHARACTERS))}"
    )


def folder_refusal(warehouse: str) -> str | None:
    """Why a local warehouse path cannot hold the tables: something other than a folder."""
    if "://" in warehouse or not os.path.lexists(warehouse) or os.path.isdir(warehouse):
        return None
    kind = "a file" if os.path.isfile(warehouse) else "not a folder"
    return (
        f"warehouse = {warehouse!r} is {kind}; allowed: a folder (it is created if missing) "
        "or an fsspec URL"
    )


def nesting_refusal(warehouse: str, catalog: Path) -> str | None:
    """Why the catalog must not live where it is: the warehouse, or inside its tables."""
    if "://" in warehouse:
        return None
    root = Path(os.path.realpath(warehouse))
    if Path(os.path.realpath(catalog)) == root:
        return (
            f"catalog = {str(catalog)!r} is the warehouse folder itself; allowed: a file "
            "outside the warehouse, or directly in its top folder"
        )
    folder = Path(os.path.realpath(catalog.parent))
    if folder == root and catalog.name in VIEWS.values():
        return (
            f"catalog = {str(catalog)!r} is named like the warehouse's table folder "
            f"{catalog.name}, which the tables need; allowed: any other name, e.g. mfn.duckdb"
        )
    if folder != root and folder.is_relative_to(root):
        return (
            f"catalog = {str(catalog)!r} lies inside the warehouse's table folders "
            f"({warehouse}), where a partition or build record could replace it; allowed: "
            "outside the warehouse, or directly in its top folder"
        )
    return None
