import pytest

from heartgate.core.errors import HeartgateError
from heartgate.release.prepare import prepare_run


def test_dotted_overrides_win_over_the_config():
    config = prepare_run(None, {"train.epochs": 7, "gate.margin": 0.01}, None)
    assert (config.train.epochs, config.gate.margin) == (7, 0.01)


def test_an_unknown_key_is_refused_before_any_step():
    with pytest.raises(HeartgateError, match="no_such_key"):
        prepare_run(None, {"train.no_such_key": 1}, None)
