import pytest

from heartgate.adapters.secrets import Credentials, without_credentials
from heartgate.core.errors import ConfigError

ENVIRONMENT = {
    "PREFECT_API_AUTH_STRING": "team:prefect-secret",
    "MLFLOW_TRACKING_USERNAME": "admin",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "AWS_ACCESS_KEY_ID": "AKIA",
    "PGPASSWORD": "pg-secret",
    "HEARTGATE_RELEASE_KEY": "release-secret",
    "PATH": "/usr/bin",
}


def test_missing_credentials_are_named_in_one_line():
    with pytest.raises(ConfigError, match=r"^the server profile needs MLFLOW_TRACKING_PASSWORD in the environment"):
        Credentials.from_environment({k: v for k, v in ENVIRONMENT.items() if k != "MLFLOW_TRACKING_PASSWORD"})
    with pytest.raises(ConfigError, match=r"^the server profile needs HEARTGATE_RELEASE_KEY in the environment \(the servers' credentials and the key"):
        Credentials.from_environment({k: v for k, v in ENVIRONMENT.items() if k != "HEARTGATE_RELEASE_KEY"})


def test_each_process_gets_only_the_credentials_it_needs():
    credentials = Credentials.from_environment(ENVIRONMENT)
    assert credentials.prefect_server() == {"PREFECT_SERVER_API_AUTH_STRING": "team:prefect-secret", "PGPASSWORD": "pg-secret"}
    mlflow = credentials.mlflow_server()
    assert (mlflow["MLFLOW_AUTH_ADMIN_USERNAME"], mlflow["MLFLOW_AUTH_ADMIN_PASSWORD"]) == ("admin", "mlflow-secret")
    assert "PREFECT_SERVER_API_AUTH_STRING" not in mlflow and mlflow["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert len(mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY"]) == 64  # a fresh CSRF key, never stored
    worker = credentials.worker()
    assert set(worker) == {
        "PREFECT_API_AUTH_STRING",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "HEARTGATE_RELEASE_KEY",  # the worker's runs promote, so they sign
    }
    assert all("release-secret" not in env.values() for env in (credentials.prefect_server(), mlflow, credentials.prefect_client()))
    assert "mlflow-secret" not in repr(credentials) and "prefect-secret" not in repr(credentials)


def test_the_base_environment_of_every_process_has_no_credential():
    assert without_credentials(ENVIRONMENT) == {"PATH": "/usr/bin"}


def test_the_aws_credentials_pass_through_as_set():
    from heartgate.adapters.secrets import AWS, as_set

    assert as_set(ENVIRONMENT, *AWS) == {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "aws-secret"}
