"""Copy OVHcloud vScope inventory and metrics into Parquet and DuckDB."""
