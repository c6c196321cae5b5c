#!/usr/bin/python
# Licensed under the Apache License, Version 2.0.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: restrictions_info
short_description: Lists who is restricted, since when, until when and why, from the restriction ledger
description:
  - Reads the restriction ledger the config's C(state) names (SQLite or PostgreSQL), which
    M(soar.restricted_group.membership) and M(soar.restricted_group.reconcile) keep. Nothing is sent to any identity
    provider.
  - A restriction is C(active), C(expired) (its end has passed and M(soar.restricted_group.reconcile) has not yet
    lifted it) or C(lifted).
version_added: 0.2.0
author:
  - soar-restricted-group maintainers (!UNKNOWN)
extends_documentation_fragment:
  - soar.restricted_group.host
options:
  user:
    description:
      - Only this user's records, as the user was given to M(soar.restricted_group.membership).
    type: str
  state:
    description:
      - Which records to list.
    type: str
    choices: [active, expired, lifted, all]
    default: active
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Reads only; the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Which restrictions have run out and wait for reconcile
  soar.restricted_group.restrictions_info:
    state: expired
    config: /etc/soar/restricted-group.json
  register: expired

- name: Everything recorded about one user
  soar.restricted_group.restrictions_info:
    user: alice@corp.example
    state: all
    config: /etc/soar/restricted-group.json
"""

RETURN = r"""
restrictions:
  description: One record per identity provider, group and user, newest restriction first.
  returned: success
  type: list
  elements: dict
  contains:
    idp:
      description: The identity provider's name in the config.
      type: str
    user:
      description: The user as given when restricted.
      type: str
    user_id:
      description: The SCIM id of the user.
      type: str
    reason:
      description: Why the user was restricted, when a reason was given.
      type: str
    correlation_id:
      description: The correlation id of the call that restricted the user.
      type: str
    restricted_at:
      description: When the user was restricted, RFC 3339 UTC.
      type: str
    expires_at:
      description: When the restriction ends, RFC 3339 UTC; null when it does not end by itself.
      type: str
    lifted_at:
      description: When the restriction was lifted.
      type: str
    lifted_by:
      description: C(remove-from-group) or C(expired).
      type: str
    state:
      description: C(active), C(expired) or C(lifted).
      type: str
    preexisting:
      description: The user was in the group before the restriction; expiry leaves such a membership in place.
      type: bool
result:
  description: The C(restrictions) document C(soar-host) prints.
  returned: always, except when the config or the plugin cannot be loaded
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.soar.restricted_group.plugins.module_utils.host import COMMON_ARGUMENTS, load_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            user=dict(type="str"),
            state=dict(type="str", choices=["active", "expired", "lifted", "all"], default="active"),
            **COMMON_ARGUMENTS,
        ),
        supports_check_mode=True,
    )
    host = load_host(module)
    report = host.restrictions(idp=module.params["idp"], user=module.params["user"], state=module.params["state"])
    document = report.document
    if report.exit_code != 0:
        error = document["error"]
        module.fail_json(msg=f"{error['kind']}: {error['message']}", error_kind=error["kind"], result=document)
    module.exit_json(changed=False, restrictions=document["restrictions"], result=document)


if __name__ == "__main__":
    main()
