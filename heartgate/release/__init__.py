"""How a candidate becomes production and how a run ends: the approval and the reviewer's
evidence, the promotion under its lock, reconcile (desired `@production` against what the target
serves), notifications, Prefect <-> MLflow links, history, the run's outcome, resuming a
suspended run and what every flow checks first (`prepare`). Imports every package below it;
above it sit only `cli` and `stack` (and tasks/ and flows/, the layers over the core)."""
