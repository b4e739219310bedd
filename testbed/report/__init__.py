"""The report stage: tables and plots, built from results and journals only (no root)."""
