"""/api/v1/webhooks: subscriptions to registry events, their deliveries and redelivery.

A subscription belongs to its scope, not to whoever created it: a repository's subscriptions
are managed by the repository's administrators, a namespace's by the organization's owners
(or by the user whose namespace it is), the registry-wide ones by system administrators.
Someone who may not read a private repository (or see an organization) gets the 404 a missing
webhook gets; someone who may see the scope but not manage it gets 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection

from trustyard.api.audit import AuditTrail, Trail
from trustyard.api.deps import Caller, Limit, Registry, Service, manage_org, require_admin
from trustyard.api.errors import ApiProblem, forbidden, hidden, problems
from trustyard.api.schemas import MAX_ROW_ID, NO_NUL, Page
from trustyard.auth.accounts import AccountService
from trustyard.auth.authorize import Action
from trustyard.auth.gate import Accounts
from trustyard.auth.permissions import Principal
from trustyard.content.repositories import check_repository_name
from trustyard.db.engine import read_tx, write_tx
from trustyard.errors import DomainError, Invalid, NotFound
from trustyard.events.model import EventType, namespace_of
from trustyard.webhooks.interfaces import Attempt, Delivery, PayloadFormat, Scope, Subscription
from trustyard.webhooks.service import WebhookService

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

WebhookId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Text = Annotated[str, Field(max_length=4096, pattern=NO_NUL)]


def get_webhooks(request: Request) -> WebhookService:
    webhooks: WebhookService = request.app.state.webhooks
    return webhooks


Webhooks = Annotated[WebhookService, Depends(get_webhooks)]


# --- bodies ------------------------------------------------------------------------------------
class WebhookCreate(BaseModel):
    url: str = Field(max_length=2048, pattern=NO_NUL, description="http:// or https://")
    events: list[EventType] = Field(min_length=1, max_length=32)
    repository: str | None = Field(
        default=None, max_length=255, pattern=NO_NUL, description="one repository's events"
    )
    namespace: str | None = Field(
        default=None,
        max_length=255,
        pattern=NO_NUL,
        description="the events of every repository of an organization or a user",
    )
    registry: bool = Field(
        default=False, description="every event of the registry (system administrators)"
    )
    format: PayloadFormat = PayloadFormat.DTR
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        pattern=NO_NUL,
        description="the HMAC key of the signature header (default: generated and shown once)",
    )
    ca_bundle: str | None = Field(
        default=None,
        max_length=65536,
        pattern=NO_NUL,
        description="PEM certificates to trust for https:// instead of the system's",
    )
    tls_verify: bool = Field(default=True, description="false: accept any certificate")
    description: Text = ""

    @model_validator(mode="after")
    def _one_scope(self) -> WebhookCreate:
        chosen = [self.repository is not None, self.namespace is not None, self.registry]
        if sum(chosen) != 1:
            raise ValueError("give exactly one of repository, namespace or registry=true")
        return self

    @property
    def scope(self) -> tuple[Scope, str]:
        if self.repository is not None:
            return Scope.REPOSITORY, self.repository
        if self.namespace is not None:
            return Scope.NAMESPACE, self.namespace
        return Scope.REGISTRY, ""


class WebhookUpdate(BaseModel):
    url: str | None = Field(default=None, max_length=2048, pattern=NO_NUL)
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=32)
    format: PayloadFormat | None = None
    ca_bundle: str | None = Field(
        default=None, max_length=65536, pattern=NO_NUL, description='"" removes the bundle'
    )
    tls_verify: bool | None = None
    description: Text | None = None
    active: bool | None = Field(
        default=None,
        description="true turns an inactive subscription on again (what waits is sent)",
    )
    secret: str | None = Field(default=None, min_length=16, max_length=256, pattern=NO_NUL)
    rotate_secret: bool = Field(default=False, description="generate a new secret (shown once)")


class WebhookTest(BaseModel):
    type: EventType | None = Field(
        default=None, description="the sample's event type (default: the first subscribed)"
    )


class WebhookOut(BaseModel):
    id: str
    scope: Scope
    repository: str | None
    namespace: str | None
    url: str
    events: list[EventType]
    format: PayloadFormat
    tls_verify: bool
    ca_bundle: str | None
    description: str
    active: bool
    inactive_reason: str | None = Field(description="why it was turned off")
    inactive_since: datetime | None
    failing_since: datetime | None = Field(description="first failure since the last success")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None, description="only in the answer that created or changed it: keep it"
    )

    @classmethod
    def of(cls, subscription: Subscription, secret: str | None = None) -> WebhookOut:
        scope = subscription.scope
        return cls(
            id=subscription.public_id,
            scope=scope,
            repository=subscription.target if scope is Scope.REPOSITORY else None,
            namespace=subscription.target if scope is Scope.NAMESPACE else None,
            url=subscription.url,
            events=sorted(subscription.event_types, key=list(EventType).index),
            format=subscription.format,
            tls_verify=subscription.tls_verify,
            ca_bundle=subscription.ca_bundle,
            description=subscription.description,
            active=subscription.active,
            inactive_reason=subscription.inactive_reason,
            inactive_since=subscription.inactive_since,
            failing_since=subscription.failing_since,
            last_success_at=subscription.last_success_at,
            last_failure_at=subscription.last_failure_at,
            created_by=subscription.created_by,
            created_at=subscription.created_at,
            updated_at=subscription.updated_at,
            secret=secret,
        )


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None = Field(description="null: no answer (see error)")
    latency_ms: int | None
    error: str | None
    response_excerpt: str | None = Field(description="the first KiB of the answer's body")

    @classmethod
    def of(cls, attempt: Attempt) -> AttemptOut:
        return cls(
            attempt=attempt.attempt,
            at=attempt.at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
            response_excerpt=attempt.response_excerpt,
        )


class DeliveryOut(BaseModel):
    id: int
    event_id: str = Field(description="the event's id (X-Trustyard-Event-Id, CloudEvents id)")
    event_type: EventType
    kind: str = Field(description="event | test | redelivery")
    redelivery_of: int | None
    state: str = Field(description="pending | delivered")
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_status: int | None
    last_error: str | None
    history: list[AttemptOut] = Field(description="every attempt, oldest first")

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event.id,
            event_type=delivery.event.type,
            kind=delivery.kind.value,
            redelivery_of=delivery.redelivery_of,
            state=delivery.state.value,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            last_status=delivery.last_status,
            last_error=delivery.last_error,
            history=[AttemptOut.of(attempt) for attempt in delivery.history],
        )


# --- who manages what ------------------------------------------------------------------------
def check_scope(
    conn: Connection,
    accounts: Accounts,
    service: AccountService,
    principal: Principal,
    scope: Scope,
    target: str,
) -> None:
    """Raise unless `principal` manages the webhooks of this scope: a 404 (the scope's own
    NotFound words) when they may not know it exists, 403 when they may but do not manage it.
    A namespace that is another user's is answered exactly like a missing one (users are not
    listed to other users), after the same work."""
    if scope is Scope.REGISTRY:
        require_admin(principal)
        return
    if scope is Scope.REPOSITORY:
        if not accounts.policy.may(conn, principal, Action.PULL, target):
            raise hidden("repository", target)
        if not accounts.policy.may(conn, principal, Action.ADMIN, target):
            raise forbidden(f"only administrators of {target!r} manage its webhooks")
        return
    if accounts.policy.store.user(conn, target) is not None:
        if not (principal.is_admin or (principal.kind == "user" and principal.name == target)):
            raise hidden("organization", target)
        return
    try:
        manage_org(service, conn, principal, target)
    except NotFound:
        if principal.is_admin:  # administrators may know what exists
            raise
        raise hidden("organization", target) from None


def _managed(
    conn: Connection,
    accounts: Accounts,
    service: AccountService,
    webhooks: WebhookService,
    principal: Principal,
    webhook_id: str,
) -> Subscription:
    """The subscription, if `principal` manages it; one whose scope they may not know is
    answered exactly like a missing one."""
    subscription = webhooks.get(conn, webhook_id)
    try:
        check_scope(conn, accounts, service, principal, subscription.scope, subscription.target)
    except NotFound:
        raise hidden("webhook", webhook_id) from None
    except ApiProblem as problem:
        if problem.status == 404:
            raise hidden("webhook", webhook_id) from None
        raise
    return subscription


def _manages(
    conn: Connection,
    accounts: Accounts,
    service: AccountService,
    principal: Principal,
    subscription: Subscription,
) -> bool:
    try:
        check_scope(conn, accounts, service, principal, subscription.scope, subscription.target)
    except (DomainError, ApiProblem):
        return False
    return True


def _audit(
    trail: AuditTrail,
    conn: Connection,
    action: str,
    subscription: Subscription,
    detail: dict[str, object] | None = None,
) -> None:
    organization = namespace_of(subscription.target) if subscription.target else None
    trail.record(
        conn, action, "webhook", subscription.public_id, organization=organization, detail=detail
    )


# --- routes ------------------------------------------------------------------------------------
@router.post("", status_code=201, responses=problems(404))
def create_webhook(
    body: WebhookCreate,
    webhooks: Webhooks,
    response: Response,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> WebhookOut:
    """Subscribe a URL to events of a repository (its administrators), a namespace (the
    organization's owners, or the user whose namespace it is) or the whole registry (system
    administrators). The answer carries the signing secret: it is never shown again. The URL
    must resolve to global addresses (or to networks the administrator allowed)."""
    scope, target = body.scope
    if scope is Scope.REPOSITORY:
        check_repository_name(target)
    webhooks.check_destination(body.url)  # resolves the host: outside the transaction
    with write_tx(accounts.engine) as conn:
        check_scope(conn, accounts, service, caller, scope, target)
        if (
            scope is Scope.REPOSITORY
            and accounts.policy.content.repository_id(conn, target) is None
        ):
            raise NotFound("repository", target)
        created = webhooks.create(
            conn,
            scope=scope,
            target=target,
            url=body.url,
            event_types=body.events,
            actor=caller.name,
            fmt=body.format,
            secret=body.secret,
            ca_bundle=body.ca_bundle,
            tls_verify=body.tls_verify,
            description=body.description,
        )
        _audit(trail, conn, "webhook.create", created.subscription, {"url": body.url})
    response.headers["Location"] = f"/api/v1/webhooks/{created.subscription.public_id}"
    return WebhookOut.of(created.subscription, created.secret)


@router.get("")
def list_webhooks(
    webhooks: Webhooks,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 100,
    after: Annotated[
        str | None,
        Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="the previous `next`"),
    ] = None,
    repository: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
    namespace: Annotated[str | None, Query(max_length=255, pattern=NO_NUL)] = None,
) -> Page[WebhookOut]:
    """The subscriptions the caller manages, oldest first (only those of `repository` or
    `namespace` when given)."""
    if repository is not None and namespace is not None:
        raise Invalid("filter by repository or by namespace, not both")
    scope = Scope.REPOSITORY if repository else Scope.NAMESPACE if namespace else None
    with read_tx(accounts.engine) as conn:
        cursor = None
        if after is not None:
            known = webhooks.store.by_public_id(conn, after)
            if known is None:
                raise Invalid("after is the `next` of a previous page (that webhook is gone)")
            cursor = known.id
        found: list[Subscription] = []
        while len(found) <= limit:
            batch = webhooks.store.list_subscriptions(
                conn, 200, cursor, scope, repository or namespace
            )
            found += [s for s in batch if _manages(conn, accounts, service, caller, s)]
            if len(batch) < 200:
                break
            cursor = batch[-1].id
    items = [WebhookOut.of(subscription) for subscription in found[:limit]]
    return Page(items=items, next=items[-1].id if len(found) > limit else None)


@router.get("/{webhook_id}", responses=problems(404))
def get_webhook(
    webhook_id: WebhookId, webhooks: Webhooks, caller: Caller, accounts: Registry, service: Service
) -> WebhookOut:
    """One subscription, with whether it is active and, if not, why."""
    with read_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
    return WebhookOut.of(subscription)


@router.patch("/{webhook_id}", responses=problems(404))
def update_webhook(
    webhook_id: WebhookId,
    body: WebhookUpdate,
    webhooks: Webhooks,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> WebhookOut:
    """Change the URL, events, format, TLS settings, description or secret; `active: true`
    turns an inactive subscription on again."""
    changes = body.model_dump(exclude_none=True, exclude={"secret", "rotate_secret"})
    if body.url is not None:
        webhooks.check_destination(body.url)  # resolves the host: outside the transaction
    with write_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
        updated, secret = webhooks.update(
            conn,
            subscription,
            url=body.url,
            event_types=body.events,
            fmt=body.format,
            ca_bundle=body.ca_bundle,
            tls_verify=body.tls_verify,
            description=body.description,
            active=body.active,
            secret=body.secret,
            rotate_secret=body.rotate_secret,
        )
        changed = sorted(changes) + (["secret"] if secret is not None else [])
        _audit(trail, conn, "webhook.update", updated, {"changes": changed})
    return WebhookOut.of(updated, secret)


@router.delete("/{webhook_id}", status_code=204, responses=problems(404))
def delete_webhook(
    webhook_id: WebhookId,
    webhooks: Webhooks,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> Response:
    """Delete the subscription with its delivery history."""
    with write_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
        webhooks.delete(conn, subscription)
        _audit(trail, conn, "webhook.delete", subscription)
    return Response(status_code=204)


@router.post("/{webhook_id}/test", status_code=202, responses=problems(404))
def send_test_event(
    webhook_id: WebhookId,
    webhooks: Webhooks,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
    body: WebhookTest | None = None,
) -> DeliveryOut:
    """Queue a sample event (marked `"sample": true` in its contents) for the subscription,
    behind what it has pending; follow it in the deliveries."""
    with write_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
        delivery = webhooks.test(conn, subscription, body.type if body else None, caller.name)
        _audit(trail, conn, "webhook.test", subscription, {"type": delivery.event.type.value})
    return DeliveryOut.of(delivery)


@router.get("/{webhook_id}/deliveries", responses=problems(404))
def list_deliveries(
    webhook_id: WebhookId,
    webhooks: Webhooks,
    caller: Caller,
    accounts: Registry,
    service: Service,
    limit: Limit = 50,
    after: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="the `next` of the previous page")
    ] = None,
) -> Page[DeliveryOut]:
    """The subscription's deliveries, newest first, each with its attempts (time, status
    code, latency, error, the first KiB of the answer)."""
    with read_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
        found = webhooks.deliveries(conn, subscription, limit + 1, after)
    items = [DeliveryOut.of(delivery) for delivery in found[:limit]]
    return Page(items=items, next=str(items[-1].id) if len(found) > limit else None)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202, responses=problems(404)
)
def redeliver(
    webhook_id: WebhookId,
    delivery_id: DeliveryId,
    webhooks: Webhooks,
    caller: Caller,
    trail: Trail,
    accounts: Registry,
    service: Service,
) -> DeliveryOut:
    """Send a past delivery's event again, as a new delivery queued behind what is pending
    (the same event id: receivers that drop duplicates will drop it)."""
    with write_tx(accounts.engine) as conn:
        subscription = _managed(conn, accounts, service, webhooks, caller, webhook_id)
        delivery = webhooks.redeliver(conn, subscription, delivery_id)
        _audit(trail, conn, "webhook.redeliver", subscription, {"delivery": delivery_id})
    return DeliveryOut.of(delivery)
