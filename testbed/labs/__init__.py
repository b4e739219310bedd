"""Teaching labs (`labs/`): each a folder with its cluster spec, a README whose steps are
commands to paste, and a `check.yaml` of what must hold afterwards.

- `catalog.py` finds the labs;
- `checks.py` loads a `check.yaml` (pure, validated like a spec);
- `verify.py` checks a running cluster against it (`testbed lab check N`);
- `steps.py` reads a README's steps and their expected output, so that a test runs them
  and the labs cannot rot."""
