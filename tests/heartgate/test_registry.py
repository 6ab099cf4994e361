from heartgate.contracts import EvaluationResult, Metrics, TrainResult
from heartgate.lineage import Lineage
from heartgate.registry import version_tags

METRICS = Metrics(precision=0.98, recall=0.97, f1=0.975, accuracy=0.98, roc_auc=0.995, pr_auc=0.99, tp=400, fp=8, tn=580, fn=13)


def test_version_tags_carry_the_lineage_threshold_and_test_metrics():
    lineage = Lineage(data_md5="d" * 32, split_md5="s" * 32, data_source="pypi:x==1", git_commit="abc", config_hash="c" * 16)
    trained = TrainResult(run_id="r1", model_uri="models:/m-1", onnx_artifact="onnx/scorer.onnx", epochs=3, final_loss=0.1, final_val_loss=0.1, train_seconds=1.0)
    evaluation = EvaluationResult(threshold=0.0012345678901, threshold_rule="max_f1", validation=METRICS, test=METRICS)
    tags = version_tags(lineage, trained, evaluation)
    assert tags["data_md5"] == "d" * 32 and tags["split_md5"] == "s" * 32
    assert tags["git_commit"] == "abc" and tags["config_hash"] == "c" * 16
    assert tags["run_id"] == "r1"
    assert float(tags["threshold"]) == 0.0012345678901  # exact: serving must use the same number
    assert tags["test_precision"] == "0.980000" and tags["test_tp"] == "400"
    assert all(isinstance(value, str) for value in tags.values())
