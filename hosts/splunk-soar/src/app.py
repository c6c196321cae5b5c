"""The Splunk SOAR app: puts users in, or takes them out of, a Zscaler restricted user group over
SCIM 2.0, through the sandboxed plugin the `soar-restricted-group` package runs. One asset is one
identity provider's SCIM endpoint; its bearer token is a sensitive field, handed to the host in
memory: it never touches the disk and never reaches the plugin, a result, a message or a log."""

from collections import Counter
from collections.abc import Iterable
from typing import Any, cast

from soar_restricted_group import Host, Refusal, Report
from soar_restricted_group.types import Document, RestrictionsDocument
from soar_sdk.abstract import SOARClient
from soar_sdk.action_results import ActionOutput, ActionResult, OutputField
from soar_sdk.app import App
from soar_sdk.asset import AssetField, BaseAsset
from soar_sdk.exceptions import ActionFailure, AssetMisconfiguration
from soar_sdk.logging import getLogger
from soar_sdk.params import Param, Params

logger = getLogger()

PROFILES = ["zpa", "zia", "zidentity", "generic"]
STATES = ["active", "expired", "lifted", "all"]
USER_CEF = ["email", "user name"]


class Asset(BaseAsset):
    base_url: str = AssetField(
        description="SCIM Service Provider Endpoint (https; ZPA: https://scim1.private.zscaler.com/scim/1/<IdP id>/v2)",
        required=True,
    )
    token: str = AssetField(description="SCIM bearer token", required=True, sensitive=True)
    restricted_group: str | None = AssetField(
        description="Display name of the restricted user group (or give its id below)"
    )
    restricted_group_id: str | None = AssetField(description="SCIM id of the restricted user group")
    idp_name: str = AssetField(
        description="Name of this identity provider in results and in the restriction ledger ([a-z0-9_-]+)",
        default="zscaler",
    )
    profile: str | None = AssetField(description="Service (detected from the base URL when empty)", value_list=PROFILES)
    protected_users: str | None = AssetField(
        description="Users never restricted (break-glass and admin accounts), separated by commas"
    )
    requests_per_second: float | None = AssetField(
        description="Requests per second to the endpoint (ZIA 5 and ZIdentity 50 when empty)"
    )
    allow_http: bool = AssetField(
        description="Allow plain http, to this machine only (tests and local gateways)", default=False
    )
    allow_private_network: bool = AssetField(
        description="Allow an endpoint on a private network address (on-premises SCIM gateways)", default=False
    )
    state: str | None = AssetField(
        description="Restriction ledger: sqlite:PATH, or postgres://USER@HOST:PORT/DB for a SOAR cluster "
        "(default: a SQLite file in the data folder of the user the app runs as)"
    )
    state_password: str | None = AssetField(description="Password of the PostgreSQL ledger", sensitive=True)


def split(text: str | None) -> list[str]:
    """A comma-separated list, blanks dropped."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def host_for(asset: Asset) -> Host:
    """The host for this asset's identity provider; a refusal is the asset's misconfiguration."""
    provider: dict[str, Any] = {"name": asset.idp_name, "base_url": asset.base_url}
    optional = {
        "restricted_group": asset.restricted_group,
        "restricted_group_id": asset.restricted_group_id,
        "profile": asset.profile,
        "requests_per_second": asset.requests_per_second,
    }
    provider.update({key: value for key, value in optional.items() if value not in (None, "")})
    if asset.allow_private_network:
        provider["allow_private_network"] = True
    mapping: dict[str, Any] = {
        "identity_providers": [provider],
        "allow_http": asset.allow_http,
        "protected_users": split(asset.protected_users),
    }
    if asset.state:
        mapping["state"] = asset.state
    try:
        return Host.from_config(
            mapping,
            tokens={asset.idp_name: asset.token},
            log=forward_log,
            state_password=asset.state_password or None,
        )
    except Refusal as refusal:
        raise AssetMisconfiguration(f"{refusal.kind}: {refusal.message}") from None


def forward_log(level: str, message: str) -> None:
    """The host's log lines (the token already scrubbed) into the app's log."""
    {"debug": logger.debug, "info": logger.info, "warn": logger.warning}.get(level, logger.error)(message)


def correlation_id(soar: SOARClient[Any]) -> str | None:
    """The container the action runs for, carried into the host's log and the audit trail."""
    container = soar.get_executing_container_id()
    return f"soar-container-{container}" if container else None


class UserOutcome(ActionOutput):
    """One user at the identity provider."""

    idp: str = OutputField(example_values=["zscaler"])
    user: str = OutputField(cef_types=USER_CEF, example_values=["alice@corp.example"], column_name="User")
    user_id: str | None = OutputField(example_values=["7000001"], column_name="SCIM id")
    outcome: str | None = OutputField(
        example_values=["added", "already-member", "removed", "not-member", "would-add", "member"],
        column_name="Outcome",
    )
    error_kind: str | None = OutputField(
        example_values=["user-not-found", "protected-user", "auth-failed"], column_name="Error"
    )
    error_message: str | None = OutputField(example_values=["no user alice@corp.example"])


class OutcomeSummary(ActionOutput):
    """How many users ended how: `action_result.summary.*`."""

    status: str = OutputField(example_values=["success", "partial", "failed"])
    http_requests: int = OutputField(example_values=[3])
    added: int = OutputField(example_values=[1])
    already_member: int = OutputField(example_values=[0])
    removed: int = OutputField(example_values=[0])
    not_member: int = OutputField(example_values=[0])
    member: int = OutputField(example_values=[0])
    not_in_provider: int = OutputField(example_values=[0])
    would_add: int = OutputField(example_values=[0])
    would_remove: int = OutputField(example_values=[0])
    lifted_expired: int = OutputField(example_values=[0])
    already_lifted: int = OutputField(example_values=[0])
    kept_preexisting: int = OutputField(example_values=[0])
    re_added: int = OutputField(example_values=[0])
    in_place: int = OutputField(example_values=[0])
    unrecorded: int = OutputField(example_values=[0])
    would_lift: int = OutputField(example_values=[0])
    would_re_add: int = OutputField(example_values=[0])
    failed: int = OutputField(example_values=[0])


def user_outcomes(document: Document) -> list[UserOutcome]:
    """One entry per user and identity provider; a provider's failure is each of its users'."""
    outcomes = []
    for provider in document.get("providers", []):
        for user in provider["users"]:
            error = user["error"] or (provider["error"] if user["outcome"] is None else None)
            outcomes.append(
                UserOutcome(
                    idp=provider["idp"],
                    user=user["user"],
                    user_id=user["user_id"],
                    outcome=user["outcome"],
                    error_kind=error["kind"] if error else None,
                    error_message=error["message"] if error else None,
                )
            )
    return outcomes


def summary_of(document: Document, outcomes: Iterable[UserOutcome]) -> OutcomeSummary:
    counted = Counter((o.outcome or "failed").replace("-", "_") for o in outcomes)
    counts = {
        name: counted.get(name, 0) for name in OutcomeSummary.model_fields if name not in ("status", "http_requests")
    }
    return OutcomeSummary(status=document["status"], http_requests=document.get("http_requests", 0), **counts)


def finish(report: Report[Document], soar: SOARClient[OutcomeSummary], params: Params) -> list[UserOutcome]:
    """The report as the action's result. A refusal fails with its message, nothing sent; a
    partial or failed run fails naming each failed user and its error kind, its data kept."""
    document = report.document
    if report.exit_code == 2:
        error = document.get("error")
        raise ActionFailure(f"{error['kind']}: {error['message']}" if error else "refused")
    outcomes = user_outcomes(document)
    summary = summary_of(document, outcomes)
    if document.get("ledger_error"):
        logger.warning(f"the restriction ledger was not updated: {document['ledger_error']}; reconcile settles it")
    if document["status"] == "success":
        soar.set_summary(summary)
        soar.set_message(f"{document['action']} {document['status']}: {describe(summary)}")
        return outcomes
    failed = [f"{o.user} ({o.idp}): {o.error_kind}" for o in outcomes if o.error_kind]
    if not failed and (error := document.get("error")):
        failed = [error["kind"]]
    result = ActionResult(False, f"{document['action']} {document['status']}: {'; '.join(failed)}", params.model_dump())
    for outcome in outcomes:
        result.add_data(outcome.model_dump())
    result.set_summary(summary.model_dump())
    # The SDK passes a result object through as it is: the one way to fail and keep the data.
    return cast("list[UserOutcome]", result)


def describe(summary: OutcomeSummary) -> str:
    counts = summary.model_dump(exclude={"status", "http_requests"})
    said = [f"{count} {name.replace('_', ' ')}" for name, count in counts.items() if count]
    return ", ".join(said) or "no users"


app = App(
    name="zscaler_restricted_group",
    app_type="identity management",
    logo="logo.svg",
    logo_dark="logo_dark.svg",
    product_vendor="Zscaler",
    product_name="Zscaler SCIM (ZPA, ZIA, ZIdentity)",
    publisher="soar-restricted-group",
    appid="4b7c1f3e-8d2a-4c55-9a61-2f0e6d9b3a17",
    asset_cls=Asset,
)


@app.test_connectivity()
def test_connectivity(soar: SOARClient[Any], asset: Asset) -> None:
    """Finds the restricted group with the asset's token: the token, the endpoint and the group."""
    report = host_for(asset).test_connection(correlation_id=correlation_id(soar))
    document = report.document
    if report.exit_code != 0:
        errors = [
            f"{p['idp']}: {p['error']['kind']}: {p['error']['message']}"
            for p in document.get("providers", [])
            if p["error"]
        ]
        if not errors and (error := document.get("error")):
            errors = [f"{error['kind']}: {error['message']}"]
        raise ActionFailure("; ".join(errors) or document["status"])
    group = document["providers"][0]["group"]
    logger.info(f"connected: group {group['display_name'] if group else '?'} ({group['id'] if group else '?'})")


class UsersParams(Params):
    users: str = Param(
        description="Users: emails (the SCIM userName), id:SCIM_ID or external:EXTERNAL_ID, separated by commas",
        primary=True,
        cef_types=USER_CEF,
        allow_list=True,
    )


class ChangeParams(UsersParams):
    dry_run: bool = Param(description="Read and report what would change; change nothing", default=False)


class AddParams(ChangeParams):
    duration: str | None = Param(description="How long the restriction lasts (90m, 24h, 7d; at most 365 days)")
    until: str | None = Param(description="When the restriction ends, RFC 3339 (2026-12-31T18:00:00Z)")
    reason: str | None = Param(description="Why the users are restricted, kept in the restriction ledger")


@app.action(  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__
    name="add to restricted group",
    action_type="contain",
    description="Restricts users: adds them to the restricted user group",
    summary_type=OutcomeSummary,
    render_as="table",
)
def add_to_restricted_group(params: AddParams, soar: SOARClient[OutcomeSummary], asset: Asset) -> list[UserOutcome]:
    report = host_for(asset).add_to_group(
        split(params.users),
        dry_run=params.dry_run,
        correlation_id=correlation_id(soar),
        duration=params.duration or None,
        until=params.until or None,
        reason=params.reason or None,
    )
    return finish(report, soar, params)


@app.action(  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__
    name="remove from restricted group",
    action_type="correct",
    description="Lifts the restriction: removes users from the restricted user group",
    summary_type=OutcomeSummary,
    render_as="table",
)
def remove_from_restricted_group(
    params: ChangeParams, soar: SOARClient[OutcomeSummary], asset: Asset
) -> list[UserOutcome]:
    report = host_for(asset).remove_from_group(
        split(params.users), dry_run=params.dry_run, correlation_id=correlation_id(soar)
    )
    return finish(report, soar, params)


@app.action(  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__
    name="check membership",
    action_type="investigate",
    read_only=True,
    description="Whether each user is in the restricted user group",
    summary_type=OutcomeSummary,
    render_as="table",
)
def check_membership(params: UsersParams, soar: SOARClient[OutcomeSummary], asset: Asset) -> list[UserOutcome]:
    report = host_for(asset).check_membership(split(params.users), correlation_id=correlation_id(soar))
    return finish(report, soar, params)


class ReconcileParams(Params):
    dry_run: bool = Param(description="Report what would be lifted or added back; change nothing", default=False)


@app.action(  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__
    name="reconcile restrictions",
    action_type="correct",
    description="Lifts expired restrictions, adds back those the identity provider undid, reports unrecorded members",
    summary_type=OutcomeSummary,
    render_as="table",
)
def reconcile_restrictions(
    params: ReconcileParams, soar: SOARClient[OutcomeSummary], asset: Asset
) -> list[UserOutcome]:
    report = host_for(asset).reconcile(dry_run=params.dry_run, correlation_id=correlation_id(soar))
    return finish(report, soar, params)


class RestrictionsParams(Params):
    user: str | None = Param(description="Only this user's records", cef_types=USER_CEF)
    state: str = Param(description="Which records", value_list=STATES, default="active")


class Restriction(ActionOutput):
    """One record of the restriction ledger; times RFC 3339 UTC."""

    idp: str = OutputField(example_values=["zscaler"])
    user: str = OutputField(cef_types=USER_CEF, example_values=["alice@corp.example"], column_name="User")
    user_id: str = OutputField(example_values=["7000001"])
    group_id: str = OutputField(example_values=["9100001"])
    reason: str | None = OutputField(example_values=["impossible travel"], column_name="Reason")
    correlation_id: str | None = OutputField(example_values=["soar-container-42"])
    restricted_at: str = OutputField(example_values=["2026-12-08T09:30:13.123Z"], column_name="Restricted at")
    expires_at: str | None = OutputField(example_values=["2026-12-09T09:30:13.123Z"], column_name="Until")
    lifted_at: str | None = OutputField(example_values=["2026-12-09T09:35:00.000Z"])
    lifted_by: str | None = OutputField(example_values=["expired", "remove-from-group"])
    state: str = OutputField(example_values=["active", "expired", "lifted"], column_name="State")
    preexisting: bool


class RestrictionsSummary(ActionOutput):
    restrictions: int = OutputField(example_values=[3])


@app.action(  # type: ignore[arg-type]  # the SDK's NamedCallable wants a settable __globals__
    name="list restrictions",
    action_type="investigate",
    read_only=True,
    description="Who is restricted, since when, until when and why, from the restriction ledger",
    summary_type=RestrictionsSummary,
    render_as="table",
)
def list_restrictions(
    params: RestrictionsParams, soar: SOARClient[RestrictionsSummary], asset: Asset
) -> list[Restriction]:
    if params.state not in STATES:
        raise ActionFailure(f"invalid-input: state {params.state!r} is not one of {', '.join(STATES)}")
    report: Report[RestrictionsDocument] = host_for(asset).restrictions(
        idp=asset.idp_name, user=params.user or None, state=cast("Any", params.state)
    )
    document = report.document
    if report.exit_code != 0:
        error = document.get("error")
        raise ActionFailure(f"{error['kind']}: {error['message']}" if error else "refused")
    records = [Restriction.model_validate(record) for record in document.get("restrictions", [])]
    soar.set_summary(RestrictionsSummary(restrictions=len(records)))
    soar.set_message(f"{len(records)} restriction{'' if len(records) == 1 else 's'} ({params.state})")
    return records


if __name__ == "__main__":
    app.cli()
