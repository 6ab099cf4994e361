"""Errors a user can act on. Each carries one readable line; the CLI prints it and exits non-zero."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only: the core never imports Prefect at import time
    from prefect.client.schemas.objects import State, TaskRun
    from prefect.tasks import Task


class HeartgateError(Exception):
    """Base class: the message is one line that names the problem."""

    # True where Prefect itself sets the run's final state (a run whose pause expired is failed by
    # the server with its own message): the flow then raises the error instead of returning a state.
    final_state_by_prefect = False
    outcome = "failed"  # the run's `outcome:` tag when this ends it


class ConfigError(HeartgateError):
    """A configuration file, override or environment variable is invalid."""


class DataSourceError(HeartgateError):
    """The data source could not be fetched, or its bytes are not what was expected."""


class DataValidationError(HeartgateError):
    """The fetched data does not have the ECG5000 shape or content."""


class TrackingError(HeartgateError):
    """MLflow tracking or the model registry refused an operation."""


class TransientError(HeartgateError):
    """An I/O failure that may pass on a retry (network, a busy lock). Only these are retried."""


class SourceUnreachableError(DataSourceError, TransientError):
    """The data source could not be reached."""


def retry_only_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Prefect `retry_condition_fn`: retry I/O failures, never a validation or logic error."""
    return isinstance(state.data, TransientError)
