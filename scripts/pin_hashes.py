"""Add each package's sha256 to requirements.lock, from pip's own resolution report.

    python scripts/pin_hashes.py REPORT.json requirements.lock

REPORT.json comes from `pip install --dry-run --ignore-installed --no-deps --report REPORT.json
-r requirements.lock` (what `make lock` runs): the files pip would install here, with the hashes
the index published for them. Installs then use `pip install --require-hashes`: a file whose
content changed on the index is refused.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

HEADER = "# Every package, exact, with the sha256 of its file. Regenerate with `make lock` after changing pyproject.toml."


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_with_hashes(report: dict, lock_lines: list[str]) -> list[str]:
    hashes = {
        (canonical(item["metadata"]["name"]), item["metadata"]["version"]): item["download_info"]["archive_info"]["hashes"]["sha256"]
        for item in report["install"]
    }
    pinned = []
    for line in lock_lines:
        requirement = line.split()[0] if line.strip() and not line.startswith("#") else None
        if requirement is None:
            continue
        name, _, version = requirement.partition("==")
        digest = hashes.get((canonical(name), version))
        if digest is None:
            raise SystemExit(f"pin_hashes: {requirement} is not in the report: rerun pip's dry run on this lock")
        pinned.append(f"{requirement} --hash=sha256:{digest}")
    return [HEADER, *pinned]


def main() -> None:
    report_file, lock_file = Path(sys.argv[1]), Path(sys.argv[2])
    lines = pinned_with_hashes(json.loads(report_file.read_text()), lock_file.read_text().splitlines())
    lock_file.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
