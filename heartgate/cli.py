"""The `heartgate` command. Every failure ends in one readable line on stderr and a non-zero exit
(two when an undo failed too: the original failure, then the undo's).

An entry point: it activates the state dir (the only place, with the tests, that sets environment
variables), and runs the flow by its entrypoint, as a Prefect worker does (docs/architecture.md).
Heavy imports (prefect, mlflow, dvc, tensorflow) happen inside the commands, after the state dir
is activated: those libraries read their settings from the environment when they are imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from heartgate.adapters.state import StatePaths, open_state_dir
from heartgate.core.config import (
    PROJECT_ROOT,
    HeartgateConfig,
    load_config,
    nest,
    parse_assignments,
)
from heartgate.core.errors import HeartgateError
from heartgate.release.outcome import one_line_known_errors
from heartgate.serving.targets import target_for, target_names

EXIT_ERROR = 1
# The same entrypoint prefect.yaml deploys: the core knows the flow by name, never by import.
FLOW_ENTRYPOINT = f"{PROJECT_ROOT / 'flows' / 'train_and_deploy.py'}:train_and_deploy"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", help="configs/PROFILE.yaml layered over configs/default.yaml (e.g. server)")
    parser.add_argument("--config", metavar="FILE", help="YAML file layered over configs/default.yaml (and the profile)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="assignments",
        help="override one config value, e.g. --set train.epochs=20 (repeatable)",
    )
    parser.add_argument("--state-dir", help="where all embedded state lives (default .heartgate)")
    parser.add_argument("--tracking-uri", help="MLflow tracking server (default: SQLite in the state dir)")
    parser.add_argument("--target", choices=target_names(), help="deploy target (default: deploy.target, local)")


# Commands that take only the common options: name -> help.
PLAIN_COMMANDS = {
    "pending": "list runs waiting for approval",
    "rollback": "put @previous back into production and serving",
    "reconcile": "make the target serve @production again (smoke-tested), repairing what a crash left",
    "status": "desired (@production) and actual serving state, with lineage; exits 1 when they differ",
    "undeploy": "stop serving: terraform destroy on the target (reconcile leaves it stopped)",
    "up": "start the stack: Prefect server + UI, worker, deployments, automations, MLflow UI",
    "down": "stop the stack",
    "pull-data": "fetch, check and version the data (no training)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heartgate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run train-and-deploy now, in this process")
    run.add_argument(
        "--auto-approve",
        action="store_true",
        help="approve a candidate that passes the gate without asking (demos, CI); recorded as reviewer 'auto'",
    )
    _common(run)

    for verb, meaning in (("approve", "promote"), ("reject", "not promote")):
        answer = commands.add_parser(verb, help=f"answer a run waiting for approval: {meaning} its candidate")
        answer.add_argument("flow_run_id", help="the waiting flow run's id (see `heartgate pending`)")
        answer.add_argument("--reviewer", required=True, help="your name, recorded in the lineage")
        answer.add_argument("--comment", default="", help="why, recorded in the lineage")
        _common(answer)

    for name, meaning in PLAIN_COMMANDS.items():
        _common(commands.add_parser(name, help=meaning))

    bento = commands.add_parser("build-bento", help="build the bento for a registry version (from the registry alone)")
    bento.add_argument("version", help="registry version number")
    _common(bento)

    history = commands.add_parser(
        "history", help="the promotion ledger: per version, what was decided, by whom, why, the gate's figures, where it was deployed"
    )
    history.add_argument("--limit", type=int, default=None, help="only the newest N versions")
    history.add_argument("--json", action="store_true", help="one JSON object per version, for scripts")
    _common(history)

    lineage = commands.add_parser("lineage", help="show a registered version's lineage")
    lineage.add_argument("version", help="version number, or an alias such as candidate or production")
    _common(lineage)

    verify = commands.add_parser("verify", help="check a version's signed release record and that its artifacts are what it vouches for")
    verify.add_argument("version", help="version number, or an alias such as production")
    _common(verify)
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Dotted config keys, the same shape the flow's `overrides` parameter takes."""
    overrides = parse_assignments(args.assignments)
    if args.state_dir:
        overrides["state_dir"] = args.state_dir
    if args.tracking_uri:
        overrides["mlflow.tracking_uri"] = args.tracking_uri
    if args.target:
        overrides["deploy.target"] = args.target
    return overrides


@contextlib.contextmanager
def prefect_session() -> Iterator[None]:
    """Prefect's temporary server (used when no PREFECT_API_URL is set) stops at interpreter exit
    and logs as it goes; stopping it here keeps heartgate's own last line last."""
    try:
        with one_line_known_errors():  # approve/rollback fail in the CLI process, outside the flow
            yield
    finally:
        _end_prefect_session()


def _end_prefect_session() -> None:
    """Send the last logs, then stop the temporary server, of a command that used them. Prefect
    imports its server's API (about 4 s of CPU) only to start that server: a command that never
    did (a rollback or an undeploy under the state dir's file locks) does not pay for it here."""
    if "prefect.logging.handlers" in sys.modules:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # the run's last logs, while the server still listens
    if "prefect.server.api.server" in sys.modules:
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().stop()


def command_run(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from prefect.flows import load_flow_from_entrypoint

    from heartgate.release.approval import auto_approve_in_this_process
    from heartgate.release.parameters import RunParameters

    train_and_deploy = load_flow_from_entrypoint(FLOW_ENTRYPOINT)
    demo = auto_approve_in_this_process() if args.auto_approve else contextlib.nullcontext()
    with prefect_session(), demo:
        summary = train_and_deploy(choices=RunParameters(overrides=overrides), config_file=args.config or "", profile=args.profile or "")
    print("\n".join(summary.lines()))


def command_answer(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.release.approval import answer_paused_run

    approve = args.command == "approve"
    with prefect_session():
        name = answer_paused_run(args.flow_run_id, approve, args.reviewer, args.comment, approvers=config.approval.approvers)
    print(f"{'approved' if approve else 'rejected'} flow run {name} as {args.reviewer}")


def command_pending(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.runs import end_dead_runs
    from heartgate.release.approval import waiting_runs

    with prefect_session():
        for line in end_dead_runs():  # a run whose process is gone can no longer take an answer
            _progress(line)
        runs = waiting_runs()
    for run_id, name, since in runs:
        print(f"{run_id}  {name}  waiting since {since}")
    if not runs:
        print("no runs are waiting for approval")


def command_pull_data(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.dvc_store import DvcStore
    from heartgate.ml.data import pull_data
    from heartgate.ml.splits import split_data

    store = DvcStore.for_config(config)
    data = pull_data(config.data, store, StatePaths(config.state_root).downloads)
    split = split_data(data, config.split, store)
    print(data.describe())
    print(f"split {split.md5} {split.counts}")


def command_lineage(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.registry import Registry

    print(json.dumps(Registry.for_config(config, existing_only=True).describe(args.version), indent=2, sort_keys=True))


def command_verify(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.registry import Registry
    from heartgate.release.record import trusted_key, verified_release
    from heartgate.serving.proof import key_id

    registry = Registry.for_config(config, existing_only=True)
    version = str(registry.describe(args.version)["version"])
    trusted = trusted_key(config, os.environ)
    record = verified_release(registry, version, trusted)
    print(
        f"version {version}: release record verified (key {key_id(trusted)}): approved by {record.approver} at {record.approved_at}, "
        f"onnx sha256 {record.onnx_sha256[:12]}, serving code {record.serving_code_sha256[:12]}, data md5 {record.data_md5}"
    )


def command_history(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.registry import Registry
    from heartgate.release.history import ledger

    entries = ledger(Registry.for_config(config, existing_only=True), limit=args.limit)
    for entry in entries:
        print(entry.model_dump_json() if args.json else "\n".join(entry.lines()))
    if not entries and not args.json:
        print("no versions registered yet")


def command_build_bento(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.registry import Registry
    from heartgate.release.record import verified_build

    built = verified_build(config, Registry.for_config(config, existing_only=True), args.version, os.environ)
    print(f"bento {built.bento_tag} (model {built.model_tag}, onnx sha256 {built.onnx_sha256})")


def command_rollback(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.release.promotion import roll_back

    with prefect_session():  # the promotion lock is a Prefect concurrency limit
        roll_back(config, log=_progress)


def command_reconcile(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.runs import end_dead_runs
    from heartgate.release.reconcile import reconcile

    with prefect_session():  # the locks and the runs live on the Prefect server
        for line in end_dead_runs():
            _progress(line)
        reconciled = reconcile(config, log=_progress)
    print(reconciled.message)


def command_status(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.registry import (
        CANDIDATE_ALIAS,
        PREVIOUS_ALIAS,
        PRODUCTION_ALIAS,
        Registry,
    )
    from heartgate.release.reconcile import OutOfSync, desired_state, drift, in_sync, refused_release
    from heartgate.release.record import ReleaseNotVerified, trusted_key, verified_release

    target = target_for(config, log=lambda _: None)  # only the answer: no Terraform progress
    try:
        registry: Registry | None = Registry.for_config(config, existing_only=True)
    except HeartgateError:
        registry = None
    desired, actual = desired_state(registry, target.name, target.elsewhere()), target.observe()
    print(f"{target.name}: desired {desired.describe()}; actual {actual.describe()}")
    if actual.deployed is not None and registry is not None:
        lineage = registry.describe(actual.deployed)
        tags = lineage["tags"]
        print(
            f"  registry {lineage['name']} v{lineage['version']} {['@' + a for a in lineage['aliases']]}"
            f" -> MLflow run {lineage['run_id']} -> data md5 {tags.get('data_md5')} (split {tags.get('split_md5')})"
            f" -> bento {tags.get('bento_tag')} -> {tags.get(f'reconciled.{target.name}', 'never reconciled')}"
        )
    for alias in (PRODUCTION_ALIAS, PREVIOUS_ALIAS, CANDIDATE_ALIAS):
        version = registry.alias_version(alias) if registry else None
        print(f"@{alias}: version {version}" if version else f"@{alias}: none")
    if desired.version is not None and registry is not None:
        try:
            verified_release(registry, desired.version, trusted_key(config, os.environ))
        except ReleaseNotVerified as unproven:
            raise OutOfSync(
                f"{target.name}: @production version {desired.version} will not be served: {unproven} (the watchdog or `heartgate reconcile` refuses it)"
            ) from None
    refused = refused_release(registry, target.name)
    if refused:
        raise OutOfSync(f"{target.name}: a release was refused, {refused} (cleared by the next verified deploy)")
    if not in_sync(desired, actual):
        raise OutOfSync(f"{target.name} is out of sync: {drift(desired, actual)} (run `heartgate reconcile`)")


def command_undeploy(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate.adapters.locks import deploy_lock
    from heartgate.adapters.registry import Registry
    from heartgate.release.reconcile import mark_undeployed

    target = target_for(config, _progress)
    with prefect_session(), deploy_lock(target.name, config.state_root):
        before = target.observe()
        target.undeploy()  # verifies that nothing answers any more
        with contextlib.suppress(HeartgateError):  # no registry yet: nothing would redeploy it anyway
            mark_undeployed(Registry.for_config(config, existing_only=True), target.name, "heartgate undeploy")
    served = before.answering or before.deployed
    print(f"stopped serving version {served} at {before.url}" if served else "nothing was deployed")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def command_up(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate import stack

    settings = {key: value for key, value in overrides.items() if key != "state_dir"}  # the state dir is this machine's
    started = stack.up(config, settings, config_file=args.config)
    print(f"Prefect UI   {started.prefect_ui}  (deployments train-and-deploy/nightly and /manual, pool {config.stack.work_pool})")
    if started.mlflow_ui:
        print(f"MLflow UI    {started.mlflow_ui}")
    print(f"CLI          export PREFECT_API_URL={started.prefect_api}  # then heartgate pending / approve / reject")
    print("stop with    heartgate down")


def command_down(args: argparse.Namespace, config: HeartgateConfig, overrides: dict[str, Any]) -> None:
    from heartgate import stack

    stopped = stack.down(config)
    print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


COMMANDS = {
    "run": command_run,
    "approve": command_answer,
    "reject": command_answer,
    "pending": command_pending,
    "pull-data": command_pull_data,
    "lineage": command_lineage,
    "verify": command_verify,
    "history": command_history,
    "build-bento": command_build_bento,
    "rollback": command_rollback,
    "reconcile": command_reconcile,
    "status": command_status,
    "undeploy": command_undeploy,
    "up": command_up,
    "down": command_down,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = overrides_from(args)
        config = load_config(args.config, nest(overrides, "."), environ=os.environ, profile=args.profile)
        target = target_for(config, log=lambda _: None)  # checks deploy.target and every target's section
        open_state_dir(StatePaths(config.state_root))
        if args.command not in ("up", "down"):  # those start and stop the servers themselves
            from heartgate.adapters.dependencies import require_dependencies

            require_dependencies(config, target.dependencies)
        COMMANDS[args.command](args, config, overrides)
    except HeartgateError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"heartgate: error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("heartgate: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
