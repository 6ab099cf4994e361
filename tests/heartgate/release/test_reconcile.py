"""Desired vs actual: the pure part of reconcile (the converging is proven against real servers
in tests/flows/test_crash_consistency.py)."""

from heartgate.core.contracts import ServingState
from heartgate.release.reconcile import Desired, desired_state, drift, in_sync


class FakeRegistry:
    def __init__(self, production=None, model_tags=None):
        self.production, self._tags = production, model_tags or {}

    def alias_version(self, alias):
        return self.production if alias == "production" else None

    def model_tags(self):
        return self._tags


def test_production_is_desired_unless_the_target_was_undeployed_on_purpose():
    assert desired_state(FakeRegistry("3"), "local") == Desired("3", "@production")
    assert desired_state(FakeRegistry(None), "local") == Desired(None, "no @production yet")
    assert desired_state(None, "local") == Desired(None, "no registry yet")
    stopped = FakeRegistry("3", {"undeployed.local": "at 2026-11-26T10:00:00+00:00 by heartgate undeploy"})
    assert desired_state(stopped, "local") == Desired(None, "undeployed at 2026-11-26T10:00:00+00:00 by heartgate undeploy")
    assert desired_state(stopped, "aws").version == "3"  # per target


def serving(deployed, answering, *problems):
    return ServingState(target="local", deployed=deployed, answering=answering, url="http://127.0.0.1:3000", problems=problems)


def test_in_sync_only_when_the_desired_version_is_deployed_answering_and_nothing_is_wrong():
    assert in_sync(Desired("2", "@production"), serving("2", "2"))
    assert not in_sync(Desired("2", "@production"), serving("1", "1"))  # killed after promote
    assert not in_sync(Desired("2", "@production"), serving("2", None, "the server of heartgate:v2 is gone"))
    assert not in_sync(Desired("2", "@production"), serving(None, "2", "server pid 7 runs outside Terraform's state"))
    assert in_sync(Desired(None, "undeployed"), ServingState(target="local"))
    assert not in_sync(Desired(None, "undeployed"), serving(None, "1"))


def test_the_drift_is_one_line_saying_both_sides():
    line = drift(Desired("2", "@production"), serving("2", None, "the server of heartgate:v2 is gone"))
    assert line == ("desired version 2 (@production), actual version 2 deployed at http://127.0.0.1:3000, NOT ANSWERING; the server of heartgate:v2 is gone")
    assert ServingState(target="aws").describe() == "nothing deployed"
