"""Outbox job name -> handler. A handler is `async def f(session, ctx: JobContext, **payload)`
and runs inside the transaction that marks its outbox row done."""

from __future__ import annotations

from community.affiliates import commissions
from community.billing import service as billing
from community.campaigns import service as campaigns
from community.campaigns import tasks as campaign_tasks
from community.checkout import webhooks as checkout_webhooks
from community.hubs.service import GROUP_DELETED
from community.jobs import Handler
from community.mail import announce
from community.mail import service as mail
from community.mail import tasks as mail_tasks
from community.notifications import access as notification_access
from community.notifications import tasks as notification_tasks
from community.offers import runs as access_runs
from community.offers import tasks as offer_tasks

HANDLERS: dict[str, Handler] = {
    mail.SEND_EMAIL: mail_tasks.send_email,
    announce.NOTIFY: notification_tasks.handle_announce,
    access_runs.PROCESS_RUN: offer_tasks.process_access_run,
    access_runs.SEND_ACCESS_EMAILS: notification_access.send_access_emails,
    GROUP_DELETED: offer_tasks.on_group_deleted,
    checkout_webhooks.PROCESS_EVENT: checkout_webhooks.process_event,
    billing.PAYMENT_RECORDED: commissions.on_payment_recorded,
    billing.PAYMENT_ADJUSTED: commissions.on_payment_adjusted,
    campaigns.DELIVER: campaign_tasks.deliver,
}
