#!/usr/bin/python
# Licensed under the Apache License, Version 2.0.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reconcile
short_description: Settles the restriction ledger against the restricted groups' members
description:
  - Reads each restricted group's members and compares them with the restriction ledger the config's C(state)
    names. Restrictions whose end has passed are lifted (the users are taken out of the group), unless the user was
    in the group before the restriction; active restrictions an identity provider's push undid are added back;
    members nobody recorded are reported as C(unrecorded) and never removed.
  - Also settles changes whose process stopped between the change and its record.
  - Run it on a schedule (every few minutes) and after each identity provider sync.
version_added: 0.2.0
author:
  - soar-restricted-group maintainers (!UNKNOWN)
extends_documentation_fragment:
  - soar.restricted_group.host
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Runs as a dry run, which reads the groups and reports C(would-lift) and C(would-re-add), sending no change.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
notes:
  - The plugin must implement the C(members) interface of WIT 1.2 (the one inside the Python package does).
"""

EXAMPLES = r"""
- name: Lift expired restrictions and re-assert active ones after the IdP's sync
  soar.restricted_group.reconcile:
    config: /etc/soar/restricted-group.json
  register: reconciled

- name: Members of the restricted group that no playbook put there
  ansible.builtin.debug:
    msg: "{{ reconciled.users | selectattr('outcome', 'equalto', 'unrecorded') | map(attribute='user') | list }}"
"""

RETURN = r"""
result:
  description: The C(reconcile) document C(soar-host) prints (per provider and user outcomes and errors).
  returned: always, except when the config or the plugin cannot be loaded
  type: dict
users:
  description: One entry per user and identity provider.
  returned: always, except when the config or the plugin cannot be loaded, or the call is refused
  type: list
  elements: dict
  contains:
    idp:
      description: The identity provider's name in the config.
      type: str
    user:
      description: The user as recorded (or, for C(unrecorded), the member's userName or id).
      type: str
    user_id:
      description: The SCIM id of the user.
      type: str
    outcome:
      description:
        - C(lifted-expired), C(already-lifted), C(kept-preexisting), C(re-added), C(in-place), C(unrecorded), or in
          check mode C(would-lift), C(would-re-add); null when the user failed.
      type: str
    error_kind:
      description: The error kind when the user failed.
      type: str
    error_message:
      description: What went wrong, with the token removed.
      type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.soar.restricted_group.plugins.module_utils.host import (
    CHANGES, COMMON_ARGUMENTS, finish, load_host, user_outcomes,
)


def main():
    module = AnsibleModule(argument_spec=dict(**COMMON_ARGUMENTS), supports_check_mode=True)
    host = load_host(module)
    report = host.reconcile(idp=module.params["idp"], dry_run=module.check_mode,
                            correlation_id=module.params["correlation_id"])
    outcomes = user_outcomes(report.document)
    finish(module, report, outcomes, changed=any(o["outcome"] in CHANGES for o in outcomes))


if __name__ == "__main__":
    main()
