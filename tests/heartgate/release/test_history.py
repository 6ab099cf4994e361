"""The promotion ledger, from version tags alone."""

from __future__ import annotations

from types import SimpleNamespace

from heartgate.release.history import entry
from heartgate.release.record import sign

GATE = {
    "gate.promotable": "true",
    "gate.production_version": "1",
    "gate.candidate_precision": "0.970000",
    "gate.candidate_recall": "0.980000",
    "gate.production_precision": "0.950000",
    "gate.production_recall": "0.960000",
}


def version(number: str, **tags: str) -> SimpleNamespace:
    return SimpleNamespace(version=number, tags=tags, creation_timestamp=1_795_747_363_163, run_id="run" + number)


def test_a_promoted_version_says_who_when_why_the_figures_and_where_it_served():
    promoted = version(
        "2",
        **GATE,
        **{
            "promoted_at": "2026-11-27T02:44:01+00:00",
            "approval.decision": "approved",
            "approval.reviewer": "dr-ada",
            "approval.comment": "better on every class",
            "deployed.local": "2026-11-27T02:44:06+00:00: http://127.0.0.1:3000",
            "prefect.flow_run_name": "lambda3-minas",
            "prefect.flow_run_url": "http://127.0.0.1:4200/runs/flow-run/abc",
        },
    )
    lines = entry(promoted, aliases=("production",)).lines()
    assert lines[0] == "v2  promoted by dr-ada at 2026-11-27T02:44:01+00:00  [@production]"
    assert "    why: better on every class" in lines
    assert "    gate: precision 0.9700, recall 0.9800 vs v1: 0.9500, 0.9600: passed" in lines
    assert "    deployed: local at 2026-11-27T02:44:06+00:00 (http://127.0.0.1:3000)" in lines
    assert lines[-1].startswith("    registered 2026-11-27T") and "lambda3-minas (http://127.0.0.1:4200/runs/flow-run/abc)" in lines[-1]


def test_refusals_and_rollbacks_are_named():
    rejected = entry(version("3", **GATE, **{"approval.decision": "rejected", "approval.reviewer": "bob", "approval.comment": "class 5 worse"}))
    assert (rejected.decision, rejected.reviewer, rejected.why) == ("rejected", "bob", "class 5 worse")
    gated = entry(version("4", **{**GATE, "gate.promotable": "false"}, rejected="gate: recall 0.9 vs 0.96: not better"))
    assert gated.decision == "not promoted: did not pass the gate" and gated.why.startswith("gate: recall")
    assert gated.gate.endswith(": not passed")
    timed_out = entry(version("5", **GATE, **{"approval.decision": "timed_out"}))
    assert timed_out.decision == "not promoted: approval timed out"
    rolled = entry(version("6", **GATE, promoted_at="t", rolled_back="t2: production rolled back to version 5"))
    assert "    rolled back: t2: production rolled back to version 5" in rolled.lines()
    assert entry(version("7")).gate == "not scored"


def test_the_release_record_is_shown_as_stored_and_verify_named(tmp_path):
    from heartgate.adapters.signing import release_key
    from tests.heartgate.release.test_record import RECORD

    signed = sign(RECORD, release_key({}, tmp_path / "release.pem"))
    lines = entry(version("3", **GATE, promoted_at="t", **{"release.record": signed.to_json()})).lines()
    assert f"    release record: signed by key {signed.key_id}, approver dr-bo, onnx sha256 aaaaaaaaaaaa (`heartgate verify 3` checks it)" in lines
    assert entry(version("4", **{"release.record": "{"})).release == "malformed (`heartgate verify` says why)"
    assert entry(version("5", **GATE)).release is None  # never promoted: no record
