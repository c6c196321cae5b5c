"""The JSON documents the API returns, as `TypedDict`s: the same document `soar-host` prints
(README, "Output")."""

from __future__ import annotations

from typing import Literal, TypedDict

ErrorKind = Literal[
    "invalid-input",
    "invalid-config",
    "auth-failed",
    "user-not-found",
    "group-not-found",
    "ambiguous-group",
    "rate-limited",
    "denied",
    "timeout",
    "transport",
    "tls",
    "too-large",
    "redirect",
    "server",
    "protocol",
    "lookup-limit",
    "protected-user",
    "plugin-load",
    "plugin-timeout",
    "plugin-out-of-memory",
    "plugin-panicked",
    "plugin-trapped",
]
UserOutcome = Literal[
    "added",
    "already-member",
    "removed",
    "not-member",
    "would-add",
    "would-remove",
    "member",
    "not-in-provider",
]
ReconcileOutcome = Literal[
    "lifted-expired",
    "already-lifted",
    "kept-preexisting",
    "re-added",
    "in-place",
    "unrecorded",
    "would-lift",
    "would-re-add",
]
Status = Literal["success", "partial", "failed", "error"]
RestrictionState = Literal["active", "expired", "lifted", "all"]
ActionName = Literal["test-connection", "add-to-group", "remove-from-group", "check-membership"]
LogLevel = Literal["debug", "info", "warn", "error"]


class _ErrorRequired(TypedDict):
    kind: ErrorKind
    message: str


class ActionError(_ErrorRequired, total=False):
    status: int
    detail: str
    retry_after_ms: int
    ids: list[str]


class GroupRef(TypedDict):
    display_name: str | None
    id: str | None


class UserResult(TypedDict):
    user: str
    user_id: str | None
    outcome: UserOutcome | ReconcileOutcome | None
    error: ActionError | None
    membership_verified: bool


class ProviderResult(TypedDict):
    idp: str
    group: GroupRef | None
    outcome: Literal["connected"] | None
    error: ActionError | None
    users: list[UserResult]


class _DocumentRequired(TypedDict):
    schema_version: int
    action: str | None
    status: Status


class Document(_DocumentRequired, total=False):
    """An action's document; a refusal (exit 2) carries only `error` besides the required keys."""

    dry_run: bool
    correlation_id: str | None
    http_requests: int
    ledger_error: str
    providers: list[ProviderResult]
    error: ActionError
    audit_error: str
    trace_error: str


class Exchange(TypedDict):
    """One HTTP exchange as `watch` hears of it, every form of the token scrubbed."""

    idp: str
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: str | None
    doing: str
    attempt: int
    reason: str | None
    started: float
    duration_ms: float
    queued_ms: float
    reached_network: bool
    status: int | None
    response_headers: list[tuple[str, str]]
    response_body: str | None
    error: Literal["denied", "timeout", "connection-failed", "tls-failed", "too-large"] | None


class Restriction(TypedDict):
    """One record of the restriction ledger; times RFC 3339 UTC."""

    idp: str
    group_id: str
    user: str
    user_id: str
    user_name: str | None
    reason: str | None
    correlation_id: str | None
    restricted_at: str
    expires_at: str | None
    lifted_at: str | None
    lifted_by: Literal["remove-from-group", "expired"] | None
    state: Literal["active", "expired", "lifted"]
    preexisting: bool
    last_verified_at: str | None
    times_reasserted: int


class _RestrictionsRequired(TypedDict):
    schema_version: int
    action: Literal["restrictions"]


class RestrictionsDocument(_RestrictionsRequired, total=False):
    """The `restrictions` report; a refusal carries `status` and `error` instead."""

    restrictions: list[Restriction]
    status: Status
    error: ActionError
