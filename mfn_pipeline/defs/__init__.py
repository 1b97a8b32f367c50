"""Dagster definitions by concern: assets, checks, partitions, resources, automation, sensors."""
