from heartgate.serving.bento import served_metadata, tags_for

TAGS = {
    "threshold": "0.0020260937744751573",
    "data_md5": "d",
    "split_md5": "s",
    "git_commit": "g",
    "config_hash": "c",
    "run_id": "r",
    "threshold_rule": "max_f1",
    "data_source": "pypi:x",
    "onnx_artifact": "onnx/scorer.onnx",
    "test_precision": "0.985577",
    "test_tp": "410",
    "approval.reviewer": "alice",
}


def test_metadata_comes_from_registry_tags_only_and_keeps_the_exact_threshold():
    metadata = served_metadata("m", "3", TAGS)
    assert metadata["threshold"] == 0.0020260937744751573
    assert metadata["model_version"] == "3" and metadata["model_name"] == "m"
    assert metadata["lineage"] == {k: TAGS[k] for k in ("data_md5", "split_md5", "data_source", "git_commit", "config_hash", "run_id", "threshold_rule")}
    assert metadata["test_metrics"] == {"precision": 0.985577, "tp": 410.0}


def test_tags_follow_the_registry_version():
    assert tags_for("3") == ("heartgate-ecg:v3", "heartgate:v3")
