"""The HTML report for ops and FinOps managers: plots of the DuckDB file over a period of days."""
