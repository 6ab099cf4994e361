import pytest
from pydantic import ValidationError

from heartgate.core.contracts import ApprovalOutcome, RegisteredVersion
from heartgate.ml.gate import decide
from heartgate.release.approval import Approval, approval_request
from tests.heartgate.ml.test_gate import STRICT, score

CANDIDATE = RegisteredVersion(
    name="heartgate-ecg-autoencoder",
    version="2",
    run_id="run123",
    tags={"threshold": "0.00123", "threshold_rule": "max_f1", "data_md5": "d" * 32, "split_md5": "s" * 32, "git_commit": "abc"},
)


def test_request_shows_the_comparison_and_what_would_be_deployed():
    text = approval_request(decide(score("2", 0.97, 0.96), score("1", 0.95, 0.94), STRICT).markdown(), CANDIDATE, "RUN-ID")
    assert "Promote heartgate-ecg-autoencoder version 2 to production?" in text
    assert "| precision | 0.9700 | 0.9500 | +0.0200 |" in text
    assert "MLflow run `run123`, threshold 0.00123 (max_f1)" in text
    assert "heartgate approve RUN-ID --reviewer NAME" in text


def test_answer_needs_a_reviewer():
    with pytest.raises(ValidationError):
        Approval(approve=True, reviewer="")
    assert Approval(approve=False, reviewer="bob").comment == ""


def test_outcome_tags_go_into_the_lineage():
    outcome = ApprovalOutcome(decision="rejected", reviewer="bob", comment="too few beats", answered_at="t")
    assert not outcome.approved
    assert outcome.as_tags() == {
        "approval.decision": "rejected",
        "approval.reviewer": "bob",
        "approval.comment": "too few beats",
        "approval.answered_at": "t",
    }


def test_auto_approve_is_refused_where_the_config_does_not_allow_it():
    import pytest

    from heartgate.core.config import load_config
    from heartgate.core.errors import ConfigError
    from heartgate.release.approval import refuse_auto_approve

    server = load_config(profile="server")
    with pytest.raises(ConfigError, match=r"^auto-approve is refused here \(approval.allow_auto_approve: false"):
        refuse_auto_approve(server, auto_approve=True)
    refuse_auto_approve(server, auto_approve=False)
    refuse_auto_approve(load_config(), auto_approve=True)  # the embedded default allows it (demos)


def test_auto_approve_is_the_cli_demo_mode_of_this_process_only():
    from heartgate.core.config import load_config
    from heartgate.core.errors import ConfigError
    from heartgate.release.approval import auto_approve_in_this_process, auto_approved

    embedded, server = load_config(), load_config(profile="server")
    assert auto_approved(embedded) is False
    with auto_approve_in_this_process():
        assert auto_approved(embedded) is True
        with pytest.raises(ConfigError, match="auto-approve is refused here"):
            auto_approved(server)
    assert auto_approved(embedded) is False
