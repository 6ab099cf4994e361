"""How a candidate becomes production and how a run ends: the approval and the reviewer's
evidence, the promotion under its lock, reconcile (desired `@production` against what the target
serves), notifications, Prefect <-> MLflow links, history, the run's outcome and resuming a
suspended run. Imports every package below it; only `cli` and `stack` sit above."""
