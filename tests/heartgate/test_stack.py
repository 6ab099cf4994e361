from heartgate.config import env_overrides
from heartgate.stack import override_variables


def test_overrides_reach_the_workers_flows_as_config_variables():
    overrides = {"serve.port": 3100, "train.hidden_units": [8, 4], "data.sha256": None, "data.source": "/a b.csv"}
    variables = override_variables(overrides)
    assert variables["HEARTGATE_SERVE__PORT"] == "3100"
    assert env_overrides(variables) == {
        "serve": {"port": 3100}, "train": {"hidden_units": [8, 4]}, "data": {"sha256": None, "source": "/a b.csv"},
    }  # fmt: skip
