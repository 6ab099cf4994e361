"""Tell people when a run waits for approval, through Prefect's own automations (`heartgate up`
declares it): the trigger is the run's own state change to Suspended (a deployment's run) or
Paused (a run in a terminal), so the message comes only when a run truly waits, once per wait.

The run labels itself before it waits (`WAITING_LABELS`), so the message names the candidate
version and the gate's figures. The default channel is a webhook (Prefect's custom-webhook
block, `approval.notify.webhook_url`); Slack, Teams or email are Prefect notification blocks made
by the team, named in `approval.notify.block`, whose secrets stay in Prefect.

The same channel carries heartgate's alerts (`alert`: a release refused by reconcile), sent
straight from the process that saw the problem, together with a Prefect event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from heartgate.core.config import HeartgateConfig
from heartgate.core.contracts import GateDecision, RegisteredVersion
from heartgate.core.errors import ConfigError

if TYPE_CHECKING:  # for the annotations only: the library is imported where it is used
    from uuid import UUID

    from prefect.blocks.notifications import NotificationBlock
    from prefect.client.orchestration import SyncPrefectClient

AUTOMATION = "heartgate: a run waits for approval"
WEBHOOK_BLOCK = "heartgate-approval-webhook"
FLOW_NAME = "train-and-deploy"
WAITING_EVENTS = ("prefect.flow-run.Suspended", "prefect.flow-run.Paused")

SUBJECT = "heartgate: {{ flow_run.name }} waits for approval of version {{ flow_run.labels['heartgate.candidate_version'] }}"
BODY = (
    "Flow run {{ flow_run.name }} ({{ flow_run.id }}) waits for a person: promote "
    "{{ flow_run.labels['heartgate.model'] }} version {{ flow_run.labels['heartgate.candidate_version'] }} to production "
    "(now: {{ flow_run.labels['heartgate.production_version'] }})?\n"
    "Gate: {{ flow_run.labels['heartgate.gate'] }}\n"
    "Decide on the run's page: {{ flow_run|ui_url }}"
)


def waiting_labels(decision: GateDecision, candidate: RegisteredVersion) -> dict[str, str]:
    """What the notification says about the run, set as its labels before it waits."""
    figures = f"precision {decision.candidate.metrics.precision:.4f}, recall {decision.candidate.metrics.recall:.4f}"
    if decision.production:
        figures += f" (production {decision.production.metrics.precision:.4f}, {decision.production.metrics.recall:.4f})"
    return {
        "heartgate.model": candidate.name,
        "heartgate.candidate_version": candidate.version,
        "heartgate.production_version": f"version {decision.production.version}" if decision.production else "none",
        "heartgate.gate": figures,
    }


def label_waiting_run(flow_run_id: UUID, labels: dict[str, str]) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        client.update_flow_run_labels(flow_run_id, labels)


def _block_document_id(client: SyncPrefectClient, config: HeartgateConfig) -> UUID:
    """The notification block's id: the team's named block, or the webhook block made here."""
    from prefect.exceptions import ObjectNotFound

    notify = config.approval.notify
    if notify.block:
        block_type, _, name = notify.block.partition("/")
        try:
            return client.read_block_document_by_name(name, block_type_slug=block_type).id
        except ObjectNotFound:
            raise ConfigError(f"approval.notify.block: no Prefect block {notify.block!r} (create it in the UI's Blocks page first)") from None
    return _webhook(config).save(WEBHOOK_BLOCK, overwrite=True)


def _webhook(config: HeartgateConfig) -> NotificationBlock:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = config.approval.notify.webhook_url
    return CustomWebhookNotificationBlock(name="heartgate", url=url, method="POST", json_data={"subject": "{{subject}}", "text": "{{body}}"})


def alert(config: HeartgateConfig, line: str, event: str, resource: str, log: Callable[[str], None]) -> None:
    """Tell people now: `line` to the approval notification's channel (if one is configured) and a
    Prefect event `event` about `resource`. A channel that cannot be reached is logged; it never
    hides or undoes what the alert is about."""
    from prefect.blocks.core import Block
    from prefect.events import emit_event

    notify = config.approval.notify
    try:
        if notify.block:
            Block.load(notify.block).notify(body=line, subject=line)
        elif notify.webhook_url:
            _webhook(config).notify(body=line, subject=line)
    except Exception as failure:  # noqa: BLE001 - any channel's failure: say so, the refusal itself stands
        log(f"the alert could not be sent through approval.notify ({failure.__class__.__name__}: {failure})")
    emit_event(event=event, resource={"prefect.resource.id": resource}, payload={"message": line})


def ensure_approval_notification(client: SyncPrefectClient, config: HeartgateConfig) -> bool:
    """Create (or replace) the automation; remove it when nothing is configured. True when one is set."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    configured = bool(config.approval.notify.block or config.approval.notify.webhook_url)
    block_document_id = _block_document_id(client, config) if configured else None  # a missing block: refused before anything changes
    for existing in client.read_automations_by_name(AUTOMATION):
        client.delete_automation(existing.id)
    if not configured:
        return False
    trigger = EventTrigger(
        expect=set(WAITING_EVENTS),
        match=ResourceSpecification({"prefect.resource.id": "prefect.flow-run.*"}),
        match_related=ResourceSpecification({"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME}),
        posture=Posture.Reactive,
        threshold=1,
    )
    action = SendNotification(block_document_id=block_document_id, subject=SUBJECT, body=BODY)
    client.create_automation(AutomationCore(name=AUTOMATION, trigger=trigger, actions=[action]))
    return True
