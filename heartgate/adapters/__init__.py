"""heartgate's hands on the outside world, one module per engine: the MLflow registry, DVC,
the Terraform CLI, the state directory, credentials, promotion and deploy locks, PostgreSQL,
processes and their logs, the undo log, crashed runs and the dependency probes. Each wraps one
engine behind small typed calls; none knows what a model is for. Imports only `core`."""
