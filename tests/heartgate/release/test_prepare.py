import pytest

from heartgate.core.errors import ConfigError, HeartgateError
from heartgate.release.prepare import prepare_run


def test_dotted_overrides_win_over_the_config(tmp_path):
    config = prepare_run(None, {"state_dir": str(tmp_path), "train.epochs": 7, "gate.margin": 0.01}, None)
    assert (config.train.epochs, config.gate.margin) == (7, 0.01)


def test_an_unknown_key_is_refused_before_any_step(tmp_path):
    with pytest.raises(HeartgateError, match="no_such_key"):
        prepare_run(None, {"state_dir": str(tmp_path), "train.no_such_key": 1}, None)


def test_a_team_run_without_the_release_key_stops_before_any_step(tmp_path, monkeypatch):
    """On the server profile a run signs with the team's key or not at all: refused before training."""
    monkeypatch.delenv("HEARTGATE_RELEASE_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^releases are signed, but HEARTGATE_RELEASE_KEY is not set in the environment of the promoting process$"):
        prepare_run(None, {"state_dir": str(tmp_path)}, "server")
    assert not (tmp_path / "keys").exists()
