#!/usr/bin/python
# Licensed under the Apache License, Version 2.0.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: group_info
short_description: Tests the connection to a Zscaler restricted user group, and which users are in it
description:
  - Checks, for every identity provider the config file names, that the token is accepted and the restricted
    group exists (the C(test-connection) action), and, when O(users) is given, whether each user is in the group
    (the C(check-membership) action). It changes nothing.
  - The SCIM requests are made by the sandboxed restricted-group WebAssembly plugin, run inside this Python by
    the C(soar-restricted-group) host; the bearer token stays where the config file says.
  - A connection that fails (for example C(auth-failed), C(group-not-found)) fails the task with its error kind.
version_added: 0.1.0
author:
  - soar-restricted-group maintainers (!UNKNOWN)
extends_documentation_fragment:
  - soar.restricted_group.host
options:
  users:
    description:
      - Users whose membership to read, by email address, C(id:VALUE) or C(external:VALUE).
    type: list
    elements: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: The module reads only.
"""

EXAMPLES = r"""
- name: Test the connection (the SOAR platform's "Test Connection")
  soar.restricted_group.group_info:
    config: /etc/soar/restricted-group.json

- name: Which of these users are restricted now
  soar.restricted_group.group_info:
    config: /etc/soar/restricted-group.json
    users: [alice@corp.example, bob@corp.example]
  register: restricted

- ansible.builtin.debug:
    msg: "{{ restricted.users | selectattr('outcome', 'equalto', 'member') | map(attribute='user') | list }}"
"""

RETURN = r"""
connection:
  description: The C(test-connection) document (per provider C(outcome) C(connected) and the group found, or an error).
  returned: always, except when the config or the plugin cannot be loaded
  type: dict
result:
  description: The C(check-membership) document when O(users) is given and the connection succeeded, else the
    C(test-connection) document.
  returned: always, except when the config or the plugin cannot be loaded
  type: dict
users:
  description: One entry per user and identity provider (C(idp), C(user), C(user_id), C(outcome) C(member) or
    C(not-member), C(error_kind), C(error_message)).
  returned: when O(users) is given and the connection succeeded
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.soar.restricted_group.plugins.module_utils.host import (
    COMMON_ARGUMENTS, finish, load_host, user_outcomes,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(users=dict(type="list", elements="str"), **COMMON_ARGUMENTS),
        supports_check_mode=True,
    )
    host = load_host(module)
    options = dict(idp=module.params["idp"], correlation_id=module.params["correlation_id"])
    connection = host.test_connection(**options)
    if not module.params["users"] or connection.document["status"] != "success":
        finish(module, connection, [], changed=False, connection=connection.document)
    report = host.check_membership(module.params["users"], **options)
    finish(module, report, user_outcomes(report.document), changed=False, connection=connection.document)


if __name__ == "__main__":
    main()
