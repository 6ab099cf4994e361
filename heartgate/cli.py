"""The `heartgate` command. Every failure ends in one readable line on stderr and a non-zero exit.

Heavy imports (prefect, mlflow, dvc, tensorflow) happen inside the commands, after the state dir
is activated: those libraries read their settings from the environment when they are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from heartgate.config import HeartgateConfig, load_config, nest, parse_assignments
from heartgate.errors import HeartgateError
from heartgate.state import StatePaths, activate

EXIT_ERROR = 1


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML file layered over configs/default.yaml")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="assignments",
        help="override one config value, e.g. --set train.epochs=20 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--state-dir", help="where all embedded state lives (default .heartgate)")
    parser.add_argument("--tracking-uri", help="MLflow tracking server (default: SQLite in the state dir)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heartgate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run train-and-deploy now, in this process")
    _common(run)

    pull = commands.add_parser("pull-data", help="fetch, check and version the data (no training)")
    _common(pull)

    lineage = commands.add_parser("lineage", help="show a registered version's lineage")
    lineage.add_argument("version", help="version number, or an alias such as candidate or production")
    _common(lineage)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config keys, the same shape the flow's `overrides` parameter takes."""
    overrides = parse_assignments(args.assignments)
    if args.state_dir:
        overrides["state_dir"] = args.state_dir
    if args.tracking_uri:
        overrides["mlflow.tracking_uri"] = args.tracking_uri
    return overrides


class _NoTracebackForKnownErrors(logging.Filter):
    """A HeartgateError already names the problem in one line; its traceback is only noise.
    Anything else (a bug) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HeartgateError):
            record.exc_info, record.exc_text = None, None
        return True


@contextlib.contextmanager
def prefect_session():
    """Prefect's temporary server (used when no PREFECT_API_URL is set) stops at interpreter exit
    and logs as it goes; stopping it here keeps heartgate's own last line last."""
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    known_errors = _NoTracebackForKnownErrors()
    run_loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
    for logger in run_loggers:
        logger.addFilter(known_errors)
    try:
        yield
    finally:
        APILogWorker.drain_all(timeout=5)  # the run's last logs, while the server still listens
        for logger in run_loggers:
            logger.removeFilter(known_errors)
        SubprocessASGIServer().stop()


def command_run(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from flows.train_and_deploy import train_and_deploy

    with prefect_session():
        summary = train_and_deploy(config_file=args.config, overrides=overrides)
    print("\n".join(summary.lines()))


def command_pull_data(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from tasks.pull_data import pull_data_version
    from tasks.split_data import make_split_version

    data = pull_data_version(config)
    split = make_split_version(data, config)
    print(f"data {data.md5} ({data.rows} beats, {data.abnormal_rows} abnormal) at {data.path}")
    print(f"split {split.md5} {split.counts}")


def command_lineage(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.registry import describe_version

    print(json.dumps(describe_version(config, args.version), indent=2, sort_keys=True))


COMMANDS = {"run": command_run, "pull-data": command_pull_data, "lineage": command_lineage}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = overrides_from(args)
        config = load_config(args.config, nest(overrides, "."), environ=os.environ)
        activate(StatePaths(config.state_root))
        COMMANDS[args.command](args, config, overrides)
    except HeartgateError as exc:
        print(f"heartgate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("heartgate: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
