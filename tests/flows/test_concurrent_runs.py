"""Two runs started together on one state dir, each with a different data source: each trains,
evaluates and gates on exactly the bytes its lineage records (the data is read from its
content-addressed copy, named and verified by md5, never from the workspace file the other run
rewrites)."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys

import pytest

from heartgate.adapters.registry import Registry
from heartgate.core.config import load_config
from heartgate.ml.metrics import classification_metrics, pick_threshold
from heartgate.ml.splits import arrays_for_lineage
from heartgate.serving.scorer import OnnxScorer
from tests.conftest import clean_environment

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def planted_copy(text: str) -> str:
    """Every sample scaled by 1.5: another data version, with other scaling, errors and metrics."""
    lines = text.splitlines()
    rows = [",".join([*fields[:2], *(repr(float(v) * 1.5) for v in fields[2:])]) for fields in (line.split(",") for line in lines[1:])]
    return "\n".join([lines[0], *rows]) + "\n"


QUICK = ("--set", "data.sha256=null", "--set", "train.epochs=2", "--set", "approval.timeout_s=2", "--set", "approval.poll_interval_s=1")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, prefect_server, reference_csv_gz):
    root = tmp_path_factory.mktemp("concurrent")
    state, planted = root / "state", root / "planted.csv"
    reference = gzip.decompress(reference_csv_gz.read_bytes())
    planted.write_text(planted_copy(reference.decode()))
    sources = {str(reference_csv_gz): hashlib.md5(reference).hexdigest(), str(planted): hashlib.md5(planted.read_bytes()).hexdigest()}
    env = clean_environment()
    env |= {"PREFECT_API_URL": prefect_server}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "heartgate.cli", "run", "--state-dir", str(state), "--set", f"data.source={source}", *QUICK],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in sources
    ]
    results = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, results, strict=True):
        # Nobody is in production, so both candidates pass the gate; nobody answers, so neither is promoted.
        assert run.returncode == 1 and "not promoted, production unchanged" in err.strip().splitlines()[-1], err[-3000:]
    return load_config(overrides={"state_dir": str(state)}), sources


def test_each_version_records_the_md5_of_its_own_source(two_runs):
    config, sources = two_runs
    versions = Registry.for_config(config).client.search_model_versions("name = 'heartgate-ecg-autoencoder'")
    assert sorted(v.tags["data_source"] for v in versions) == sorted(sources)
    for version in versions:
        assert version.tags["data_md5"] == sources[version.tags["data_source"]]
    assert len({v.tags["data_md5"] for v in versions}) == 2


def test_each_version_trained_evaluated_and_gated_on_its_own_bytes(two_runs):
    config, _ = two_runs
    registry = Registry.for_config(config)
    highs = []
    for version in registry.client.search_model_versions("name = 'heartgate-ecg-autoencoder'"):
        tags = version.tags
        arrays = arrays_for_lineage(config, tags["data_md5"], tags["split_md5"])  # the bytes the lineage names
        # train: the scaling was fitted on these normal train beats
        high = float(registry.client.get_run(tags["run_id"]).data.params["scaling.high"])
        assert high == float(arrays.train_normal.max())
        highs.append(high)
        # evaluate: the threshold comes from these validation beats, the metrics from these test beats
        scorer = OnnxScorer(registry.artifact(tags["run_id"], tags["onnx_artifact"]))
        threshold = pick_threshold(scorer.errors(arrays.validation), arrays.validation_abnormal, config.threshold)
        assert threshold == float(tags["threshold"])
        test = classification_metrics(scorer.errors(arrays.test), arrays.test_abnormal, threshold)
        assert (f"{test.precision:.6f}", f"{test.recall:.6f}") == (tags["test_precision"], tags["test_recall"])
        # gate: the candidate was scored on the same test beats
        assert (tags["gate.candidate_precision"], tags["gate.candidate_recall"]) == (tags["test_precision"], tags["test_recall"])
        assert tags["approval.decision"] == "timed_out"
    assert len(set(highs)) == 2  # the two data sets really differ, so the checks above tell them apart
