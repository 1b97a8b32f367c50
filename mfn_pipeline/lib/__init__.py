"""What the definitions are built on: settings, the warehouse, the DuckDB catalog, figures."""
