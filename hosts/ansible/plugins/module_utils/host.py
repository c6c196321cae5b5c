# Licensed under the Apache License, Version 2.0.
"""What the modules share: loading the Python host from the config file, and reading a
`soar-host` document as per-user outcomes. The plugin runs sandboxed inside this Python; the
token stays where the config file says (`token_env` or `token_file`), never in a module argument."""

from __future__ import annotations

import traceback

try:
    from soar_restricted_group import Host, Refusal
except ImportError:
    Host = Refusal = None
    HOST_IMPORT_ERROR = traceback.format_exc()
else:
    HOST_IMPORT_ERROR = None

# Outcomes that are (or, in check mode, would be) a change on the server or in the ledger.
CHANGES = ("added", "removed", "would-add", "would-remove", "lifted-expired", "already-lifted", "kept-preexisting",
           "re-added", "would-lift", "would-re-add")

COMMON_ARGUMENTS = dict(
    config=dict(type="path", required=True),
    idp=dict(type="str"),
    correlation_id=dict(type="str"),
    plugin=dict(type="path"),
    state_password=dict(type="str", no_log=True),
)


def load_host(module):
    """The host for the module's config, or the task failed with the refusal's message."""
    if HOST_IMPORT_ERROR is not None:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("soar-restricted-group", url="hosts/python in this collection's repository"),
                         exception=HOST_IMPORT_ERROR)
    try:
        return Host.from_config_file(module.params["config"], module.params["plugin"],
                                     log=lambda level, message: module.warn(message) if level in ("warn", "error") else None,
                                     state_password=module.params["state_password"])
    except Refusal as refusal:
        module.fail_json(msg=f"{refusal.kind}: {refusal.message}", error_kind=refusal.kind)


def user_outcomes(document):
    """One entry per user and identity provider: its outcome, or its error kind and message."""
    outcomes = []
    for provider in document.get("providers", []):
        for user in provider["users"]:
            error = user["error"] or (provider["error"] if user["outcome"] is None else None)
            outcomes.append({
                "idp": provider["idp"], "user": user["user"], "user_id": user["user_id"], "outcome": user["outcome"],
                "error_kind": error["kind"] if error else None, "error_message": error["message"] if error else None,
            })
    return outcomes


def finish(module, report, outcomes, changed, **extra):
    """Exits the module: a refusal fails with its message; `partial` or `failed` fails naming each
    failed user and its error kind (the document still returned); anything else succeeds."""
    document = report.document
    if document.get("ledger_error"):
        # The change is made; its intent stays in the ledger for the next reconcile to settle.
        module.warn(f"the restriction ledger was not updated: {document['ledger_error']}; reconcile settles it")
    if report.exit_code == 2:
        module.fail_json(msg=f"{document['error']['kind']}: {document['error']['message']}", result=document,
                         error_kind=document["error"]["kind"], changed=False)
    if document["status"] != "success":
        failed = [f"{o['user']} ({o['idp']}): {o['error_kind']}" for o in outcomes if o["error_kind"]]
        if not failed:
            failed = [f"{p['idp']}: {p['error']['kind']}" for p in document.get("providers", []) if p.get("error")]
        if not failed and document.get("error"):
            failed = [document["error"]["kind"]]
        module.fail_json(msg=f"{document['action']} {document['status']}: {'; '.join(failed)}", result=document,
                         users=outcomes, changed=changed, **extra)
    module.exit_json(changed=changed, result=document, users=outcomes, **extra)
