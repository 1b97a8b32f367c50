"""mfn_pipeline: the Dagster code location that builds the MFN data sets."""
