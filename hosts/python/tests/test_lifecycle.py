"""The restriction lifecycle through the Python API: a restriction bounded by a `timedelta` or an
aware `datetime`, the `restrictions` report, `reconcile` lifting what expired and adding back what
an identity provider undid, and the ledger on SQLite or on the test command's PostgreSQL server
(its password handed over in memory). After each step the group is read from the server."""

from __future__ import annotations

import json
import os
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import GROUP, TOKEN, Simulator
from soar_restricted_group import Host
from soar_restricted_group.types import RestrictionState


def postgres() -> tuple[str, str]:
    url = os.environ.get("SOAR_TEST_POSTGRES")
    assert url, "SOAR_TEST_POSTGRES names the test PostgreSQL server: run the tests with bash scripts/test.sh"
    return url, os.environ.get("SOAR_TEST_POSTGRES_PASSWORD", "")


def host_on(simulator: Simulator, tmp_path: Path, state: str, name: str = "zpa", **keys: Any) -> Host:
    mapping = {
        "identity_providers": [{"name": name, "base_url": simulator.base_url, "restricted_group": GROUP}],
        "allow_http": True,
        "cache_dir": str(tmp_path / "cache"),
        "state": state,
    }
    return Host.from_config(mapping, tokens={name: TOKEN}, base_dir=tmp_path, **keys)


def states(host: Host, state: RestrictionState) -> list[str]:
    report = host.restrictions(state=state)
    assert report.exit_code == 0, report.document
    return [record["user"] for record in report.document.get("restrictions", [])]


def outcomes(document: Any) -> dict[str, str]:
    return {user["user"]: user["outcome"] for provider in document["providers"] for user in provider["users"]}


def wait_until_expired(host: Host, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(states(host, "expired")) < count:
        assert time.monotonic() < deadline, "the restriction never expired"
        time.sleep(0.1)


def push_members(simulator: Simulator, users: list[str]) -> None:
    """Replaces the group's members through the server's API, as an identity provider's push."""
    ids = []
    for user in users:
        found = simulator.get(f"/Users?filter=userName%20eq%20%22{user}%22")["Resources"]
        ids.append({"value": found[0]["id"]})
    group = next(g for g in simulator.get("/Groups?count=1000")["Resources"] if g["displayName"] == GROUP)
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "members", "value": ids}],
    }
    request = urllib.request.Request(
        f"{simulator.base_url}/Groups/{group['id']}",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status < 300


def test_a_restriction_for_a_timedelta_is_lifted_by_reconcile_once_it_expires(
    simulator: Simulator, tmp_path: Path
) -> None:
    host = host_on(simulator, tmp_path, "sqlite:ledger.sqlite3")
    added = host.add_to_group(["user1@corp.example"], duration=timedelta(seconds=1), reason="impossible travel")
    assert outcomes(added.document) == {"user1@corp.example": "added"}, added.document
    record = host.restrictions().document["restrictions"][0]
    assert (record["user"], record["reason"], record["state"]) == ("user1@corp.example", "impossible travel", "active")
    assert record["expires_at"] is not None
    wait_until_expired(host, 1)

    dry = host.reconcile(dry_run=True)
    assert outcomes(dry.document) == {"user1@corp.example": "would-lift"}
    assert simulator.members() == {"user1@corp.example"}
    lifted = host.reconcile(correlation_id="sweep-1")
    assert (lifted.exit_code, outcomes(lifted.document)) == (0, {"user1@corp.example": "lifted-expired"})
    assert simulator.members() == set()
    assert states(host, "lifted") == ["user1@corp.example"]
    assert (tmp_path / "ledger.sqlite3").is_file()


def test_reconcile_adds_back_what_a_push_undid_and_reports_who_nobody_recorded(
    simulator: Simulator, tmp_path: Path
) -> None:
    host = host_on(simulator, tmp_path, "sqlite:ledger.sqlite3")
    until = datetime.now(UTC) + timedelta(days=2)
    assert host.add_to_group(["user1@corp.example"], until=until).exit_code == 0
    expires = host.restrictions().document["restrictions"][0]["expires_at"]
    assert expires is not None
    assert abs(datetime.fromisoformat(expires.replace("Z", "+00:00")) - until) < timedelta(seconds=1)

    push_members(simulator, ["user2@corp.example"])
    report = host.reconcile()
    assert outcomes(report.document) == {"user1@corp.example": "re-added", "user2@corp.example": "unrecorded"}
    assert simulator.members() == {"user1@corp.example", "user2@corp.example"}
    assert host.restrictions().document["restrictions"][0]["times_reasserted"] == 1


@pytest.mark.parametrize(
    "restrict, says",
    [
        ({"duration": timedelta(seconds=-5)}, "more than nothing"),
        ({"duration": timedelta(days=400)}, "at most 365 days"),
        ({"duration": "soon"}, "give a duration"),
        ({"until": datetime(2099, 1, 1)}, "a datetime with a time zone"),
        ({"until": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"duration": "1h", "until": "2099-01-01T00:00:00Z"}, "not both"),
        ({"reason": "two\nlines"}, "one line"),
    ],
)
def test_a_bad_restriction_is_refused_before_anything_is_sent(
    simulator: Simulator, tmp_path: Path, restrict: dict[str, Any], says: str
) -> None:
    host = host_on(simulator, tmp_path, "sqlite:ledger.sqlite3")
    report = host.add_to_group(["user1@corp.example"], **restrict)
    assert report.exit_code == 2, report.document
    error = report.document.get("error")
    assert error is not None and error["kind"] == "invalid-input" and says in error["message"], error
    assert simulator.members() == set()
    assert states(host, "all") == []


def test_an_unknown_state_filter_is_refused_naming_the_choices(simulator: Simulator, tmp_path: Path) -> None:
    host = host_on(simulator, tmp_path, "sqlite:ledger.sqlite3")
    report = host.restrictions(state="gone")  # type: ignore[arg-type]
    error = report.document.get("error")
    assert report.exit_code == 2 and error is not None and "active, expired, lifted, all" in error["message"]


def test_the_ledger_on_postgres_takes_its_password_in_memory_and_never_shows_it(
    simulator: Simulator, tmp_path: Path
) -> None:
    url, password = postgres()
    logged: list[str] = []
    name = f"py-{os.getpid()}"
    host = host_on(
        simulator, tmp_path, url, name=name, state_password=password, log=lambda level, message: logged.append(message)
    )
    assert host.add_to_group(["user3@corp.example"], reason="py on postgres").exit_code == 0
    mine = [r for r in host.restrictions(idp=name).document["restrictions"] if r["user"] == "user3@corp.example"]
    assert [r["reason"] for r in mine] == ["py on postgres"]
    assert host.remove_from_group(["user3@corp.example"]).exit_code == 0
    assert [r["lifted_by"] for r in host.restrictions(idp=name, state="lifted").document["restrictions"]] == [
        "remove-from-group"
    ]
    assert simulator.members() == set()
    assert password and all(password not in message for message in logged)

    # A wrong password is refused as config, naming what to fix, and nothing is sent.
    wrong = host_on(simulator, tmp_path, url, name=name, state_password="not-the-password-0123")
    report = wrong.add_to_group(["user4@corp.example"])
    error = report.document.get("error")
    assert report.exit_code == 2 and error is not None and error["kind"] == "invalid-config", report.document
    assert "not-the-password" not in json.dumps(report.document)
    assert simulator.members() == set()


def test_a_ledger_that_cannot_be_opened_refuses_changes_but_not_reads(simulator: Simulator, tmp_path: Path) -> None:
    host = host_on(simulator, tmp_path, "postgres://soar@127.0.0.1:1/soar")
    report = host.add_to_group(["user1@corp.example"])
    error = report.document.get("error")
    assert report.exit_code == 2 and error is not None and "cannot be opened" in error["message"], report.document
    reconciled = host.reconcile()
    error = reconciled.document.get("error")
    assert reconciled.exit_code == 2 and error is not None and error["kind"] == "invalid-config", reconciled.document
    assert host.check_membership(["user1@corp.example"]).exit_code == 0
    assert simulator.members() == set()
