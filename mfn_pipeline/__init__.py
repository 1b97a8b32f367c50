"""mfn_pipeline: the Dagster code location that builds the MFN data sets.

Loading it validates every configuration file; ``defs`` is the Definitions object
Dagster's own tools find (``dagster dev -m mfn_pipeline``).
"""

from mfn_pipeline.definitions import defs

__all__ = ["defs"]
