#!/usr/bin/python
# Licensed under the Apache License, Version 2.0.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: membership
short_description: Puts users in, or takes them out of, a Zscaler restricted user group over SCIM 2.0
description:
  - Adds each user to the restricted group of every identity provider the config file names (C(state=present)),
    or removes each one from it (C(state=absent)), through the SCIM 2.0 API of Zscaler Private Access or Zscaler
    Internet Access (or any SCIM 2.0 server).
  - The change is made by the sandboxed restricted-group WebAssembly plugin, run inside this Python by the
    C(soar-restricted-group) host. The plugin sees no token, no file and no network of its own; the host adds the
    bearer token and sends only requests under the provider's base URL.
  - The bearer token is never a module argument. The config file says where it is (C(token_env) or C(token_file)).
  - Users already in the group (or already out of it) are reported C(ok), not C(changed).
  - A run whose status is C(partial) or C(failed) fails the task with a message naming each failed user and its
    error kind; the full document is still returned in C(result).
version_added: 0.1.0
author:
  - soar-restricted-group maintainers (!UNKNOWN)
extends_documentation_fragment:
  - soar.restricted_group.host
options:
  users:
    description:
      - The users, by email address (the SCIM C(userName)), C(id:VALUE) (a SCIM id) or C(external:VALUE)
        (an C(externalId)).
    type: list
    elements: str
    required: true
  state:
    description:
      - C(present) adds each user to the restricted group; C(absent) removes each one from it.
    type: str
    choices: [present, absent]
    default: present
  duration:
    description:
      - How long the restriction lasts, such as C(90m), C(24h) or C(7d) (at most 365 days). Once it has passed,
        M(soar.restricted_group.reconcile) takes the users out of the group again.
      - Only with O(state=present); mutually exclusive with O(until).
    type: str
  until:
    description:
      - When the restriction ends, as RFC 3339 (C(2026-12-31T18:00:00Z)), at most 365 days ahead.
      - Only with O(state=present); mutually exclusive with O(duration).
    type: str
  reason:
    description:
      - Why the users are restricted, one line of at most 500 characters, kept in the restriction ledger and shown
        by M(soar.restricted_group.restrictions_info).
      - Only with O(state=present).
    type: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Runs as a dry run, which reads the group and users and reports what would change, sending no change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
notes:
  - Protected users (C(protected_users) in the config) are never changed; naming one fails the task with
    C(protected-user).
  - Every change is recorded in the restriction ledger the config's C(state) names (SQLite by default, or
    PostgreSQL); a user already in the group when restricted is never removed at expiry.
  - Changes to one group from several Ansible forks, or from other C(soar-host) processes on this machine, take
    turns through a lock file under the config's C(cache_dir), and share one rate limit per origin.
"""

EXAMPLES = r"""
- name: Restrict a user the playbook found risky
  soar.restricted_group.membership:
    users:
      - alice@corp.example
    state: present
    config: /etc/soar/restricted-group.json
    correlation_id: "{{ incident_id }}"

- name: Restrict for a day, with the reason kept in the ledger
  soar.restricted_group.membership:
    users: "{{ risky_users }}"
    duration: 24h
    reason: "impossible travel ({{ incident_id }})"
    config: /etc/soar/restricted-group.json
    correlation_id: "{{ incident_id }}"

- name: Lift the restriction again, on one identity provider only
  soar.restricted_group.membership:
    users: [alice@corp.example, "id:7000001"]
    state: absent
    idp: zpa
    config: /etc/soar/restricted-group.json

- name: What would change (nothing is sent but reads)
  soar.restricted_group.membership:
    users: "{{ risky_users }}"
    config: /etc/soar/restricted-group.json
  check_mode: true
  register: preview
"""

RETURN = r"""
result:
  description:
    - The JSON document C(soar-host) prints for the action (status, http_requests, per provider and user
      outcomes and errors), as a dictionary. See the project's README, "JSON output".
  returned: always, except when the config or the plugin cannot be loaded
  type: dict
  sample:
    schema_version: 1
    action: add-to-group
    status: success
    dry_run: false
    correlation_id: INC-4711
    http_requests: 3
    providers:
      - idp: zpa
        group: {display_name: ZPA Restricted Users, id: "9001"}
        outcome: null
        error: null
        users:
          - {user: alice@corp.example, user_id: "7000001", outcome: added, error: null, membership_verified: true}
users:
  description: One entry per user and identity provider.
  returned: always, except when the config or the plugin cannot be loaded, or the input is refused
  type: list
  elements: dict
  contains:
    idp:
      description: The identity provider's name in the config.
      type: str
    user:
      description: The user as given.
      type: str
    user_id:
      description: The SCIM id the server gave the user, when it was found.
      type: str
    outcome:
      description:
        - C(added), C(already-member), C(removed), C(not-member), or in check mode C(would-add), C(would-remove);
          null when the user failed.
      type: str
    error_kind:
      description: The error kind when the user failed (C(user-not-found), C(protected-user), C(auth-failed), ...).
      type: str
    error_message:
      description: What went wrong, with the token removed.
      type: str
error_kind:
  description: The error kind of a refusal (C(invalid-config), C(invalid-input), C(plugin-load)).
  returned: when the call was refused before anything was sent
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.soar.restricted_group.plugins.module_utils.host import (
    CHANGES, COMMON_ARGUMENTS, finish, load_host, user_outcomes,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            users=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            duration=dict(type="str"),
            until=dict(type="str"),
            reason=dict(type="str"),
            **COMMON_ARGUMENTS,
        ),
        mutually_exclusive=[("duration", "until")],
        supports_check_mode=True,
    )
    restriction = {name: module.params[name] for name in ("duration", "until", "reason") if module.params[name] is not None}
    if restriction and module.params["state"] == "absent":
        module.fail_json(msg=f"{', '.join(restriction)} belong to state=present: remove them to lift a restriction",
                         error_kind="invalid-input")
    host = load_host(module)
    change = host.add_to_group if module.params["state"] == "present" else host.remove_from_group
    report = change(module.params["users"], dry_run=module.check_mode, idp=module.params["idp"],
                    correlation_id=module.params["correlation_id"], **restriction)
    outcomes = user_outcomes(report.document)
    finish(module, report, outcomes, changed=any(o["outcome"] in CHANGES for o in outcomes))


if __name__ == "__main__":
    main()
