"""The approval notification as `heartgate up` declares it, against a real Prefect server: the
default webhook block, a team's own notification block by name, and none."""

from __future__ import annotations

import pytest

from heartgate.core.config import load_config
from heartgate.core.errors import ConfigError
from heartgate.release.notify import AUTOMATION, WAITING_EVENTS, WEBHOOK_BLOCK, ensure_approval_notification

pytestmark = [pytest.mark.integration]


@pytest.fixture
def client(prefect_server):
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server}), get_client(sync_client=True) as client:
        yield client


def notify(**settings) -> object:
    return load_config(overrides={"approval": {"notify": settings}})


def test_a_webhook_gets_prefects_webhook_block_and_one_automation_on_the_waiting_states(client):
    assert ensure_approval_notification(client, notify(webhook_url="http://127.0.0.1:9/hook")) is True
    assert ensure_approval_notification(client, notify(webhook_url="http://127.0.0.1:9/hook")) is True  # again: replaced, not doubled
    (automation,) = client.read_automations_by_name(AUTOMATION)
    assert set(automation.trigger.expect) == set(WAITING_EVENTS)
    (action,) = automation.actions
    block = client.read_block_document(action.block_document_id)
    assert (block.name, block.block_type.slug) == (WEBHOOK_BLOCK, "custom-webhook")
    assert "{{ flow_run.labels['heartgate.candidate_version'] }}" in action.subject


def test_a_teams_own_block_is_used_by_name_and_a_missing_one_is_named(client):
    from prefect.blocks.notifications import SlackWebhook

    SlackWebhook(url="https://hooks.slack.invalid/T000/B000/XXXX").save("reviewers", overwrite=True)
    ensure_approval_notification(client, notify(block="slack-webhook/reviewers", webhook_url="http://127.0.0.1:9/ignored"))
    (automation,) = client.read_automations_by_name(AUTOMATION)
    assert client.read_block_document(automation.actions[0].block_document_id).name == "reviewers"
    with pytest.raises(ConfigError, match=r"approval.notify.block: no Prefect block 'slack-webhook/nobody'"):
        ensure_approval_notification(client, notify(block="slack-webhook/nobody"))


def test_nothing_configured_means_no_automation(client):
    ensure_approval_notification(client, notify(webhook_url="http://127.0.0.1:9/hook"))
    assert ensure_approval_notification(client, notify()) is False
    assert client.read_automations_by_name(AUTOMATION) == []
