"""Benchmarks driven from the CLI (`testbed bench ...`): variants compared inside one run."""
