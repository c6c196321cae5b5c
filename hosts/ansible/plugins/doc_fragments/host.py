# Licensed under the Apache License, Version 2.0.

from __future__ import annotations


class ModuleDocFragment:
    """The options every module of the collection takes to reach the host."""

    DOCUMENTATION = r"""
options:
  config:
    description:
      - Path to the host's config file, the C(soar-host) config. It names the identity providers, their base URLs
        and restricted group, where the token is, protected users and limits.
    type: path
    required: true
  idp:
    description:
      - Acts on this identity provider of the config only; all of them when omitted.
    type: str
  correlation_id:
    description:
      - An id (an incident number, say) carried into the result, the host's log and the audit log.
    type: str
  plugin:
    description:
      - Path to another build of the component; the one inside the Python package when omitted.
    type: path
  state_password:
    description:
      - The password of the PostgreSQL restriction ledger (the config's C(state)), from a vault say; kept in memory
        and never logged. Without it, the config's C(state_password_env), C(PGPASSWORD) or C(~/.pgpass) is used.
      - Not used with a SQLite ledger.
    type: str
requirements:
  - python >= 3.11
  - soar-restricted-group (the Python host, with the plugin inside the package)
"""
