"""Size and cold start of a Lambda zip package: unzipped MiB, and the wall time of a fresh
interpreter's import + model load + first /predict call through the packaged handler (median of
N, page cache warm, interpreter start-up excluded), with and without what `needed_at_runtime`
leaves out.

    .venv/bin/python benchmarks/lambda_cold_start.py PACKAGE.zip --public-key KEY [--runs 7]

PACKAGE.zip: any package heartgate built (`<state>/deploy/aws/packages/heartgate-vN.zip`, or the
one `live` runs, from S3). KEY: the release public key the function gets (its
HEARTGATE_RELEASE_PUBLIC_KEY); the cold start includes checking the package's release record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from heartgate.serving.proof import PUBLIC_KEY_VARIABLE
from heartgate.serving.targets.aws.package import needed_at_runtime

FIRST_CALL = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from service.lambda_handler import handler
event = {"requestContext": {"http": {"method": "POST"}}, "rawPath": "/predict",
         "headers": {"content-type": "application/json"}, "body": json.dumps({"beats": [[0.5] * 140]})}
assert handler(event)["statusCode"] == 200
print(time.perf_counter() - started)
"""


def cold_starts(directory: Path, runs: int, public_key: str) -> list[float]:
    times = []
    environment = {"PATH": "/usr/bin:/bin", PUBLIC_KEY_VARIABLE: public_key}
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-I", "-c", FIRST_CALL, str(directory)], env=environment, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise SystemExit(f"benchmark: error: the handler failed: {result.stderr.strip().splitlines()[-1]}")
        times.append(float(result.stdout) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--public-key", required=True, help="the release public key (base64), as the function's environment holds it")
    args = parser.parse_args()
    with zipfile.ZipFile(args.package) as archive, tempfile.TemporaryDirectory() as scratch:
        for label, keep in (("as packaged", lambda _: True), ("pruned now", needed_at_runtime)):
            directory = Path(scratch) / label.replace(" ", "-")
            names = [info for info in archive.infolist() if not info.is_dir() and keep(info.filename)]
            for info in names:
                archive.extract(info, directory)
            size = sum(info.file_size for info in names) / 2**20
            times = cold_starts(directory, args.runs, args.public_key)
            print(
                json.dumps(
                    {
                        "package": label,
                        "unzipped_mib": round(size, 1),
                        "cold_start_ms_median": round(statistics.median(times)),
                        "cold_start_ms_max": round(max(times)),
                    }
                )
            )


if __name__ == "__main__":
    main()
