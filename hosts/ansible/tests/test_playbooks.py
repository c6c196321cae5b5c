"""The collection under real `ansible-playbook`, installed with `ansible-galaxy` as a user would,
against `soar-host simulator` on loopback: after every step the group's members are read from the
server, and no form of the token appears in anything Ansible prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hosts" / "python" / "tests"))
from conftest import TOKEN, Simulator, write_provider_config  # noqa: E402

BIN = Path(sys.executable).parent
WRONG_TOKEN = "wrong-token-for-ansible-0123456789"
PROTECTED = "user5@corp.example"


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collections")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(ROOT / "hosts" / "ansible"), "-p", str(folder)],
                   check=True, capture_output=True, text=True)
    return folder


@pytest.fixture
def server():
    simulator = Simulator()
    yield simulator
    simulator.stop()


class Playbooks:
    def __init__(self, folder: Path, collections: Path, simulator: Simulator):
        self.folder = folder
        self.collections = collections
        self.config = write_provider_config(folder / "config.json", simulator.base_url, "SOAR_TEST_TOKEN",
                                            cache_dir=str(folder / "cache"), protected_users=[PROTECTED])
        self.outputs: list[str] = []

    def run(self, module: str, arguments: dict, check_mode: bool = False, token: str = TOKEN) -> dict:
        """Runs one task; returns what it registered, as the playbook sees it."""
        dump = self.folder / "step.json"
        task = {module: {**arguments, "config": str(self.config)}, "register": "step", "ignore_errors": True}
        if check_mode:
            task["check_mode"] = True
        playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [
            task, {"ansible.builtin.copy": {"content": "{{ step | to_json }}", "dest": str(dump)}},
        ]}]
        path = self.folder / "playbook.yml"
        path.write_text(json.dumps(playbook))  # JSON is YAML
        self.play(path, token)
        return json.loads(dump.read_text())

    def play(self, path: Path, token: str = TOKEN, extra: tuple = ()) -> str:
        """Runs a playbook with `ansible-playbook -vvv`; returns what it printed."""
        env = {**os.environ, "SOAR_TEST_TOKEN": token, "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
               "ANSIBLE_HOME": str(self.folder / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(self.folder / "ansible-tmp"),
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
               "XDG_DATA_HOME": str(self.folder / "data")}
        done = subprocess.run([str(BIN / "ansible-playbook"), "-vvv", *extra, str(path)], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        self.outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@pytest.fixture
def playbooks(tmp_path, collections, server):
    return Playbooks(tmp_path, collections, server)


def outcomes(step: dict) -> list:
    return [user["outcome"] for user in step["users"]]


def test_membership_steps_change_the_server_exactly_when_they_report_changed(playbooks, server):
    users = ["user1@corp.example", "user2@corp.example"]
    step = playbooks.run("soar.restricted_group.membership", {"users": users, "state": "present", "correlation_id": "INC-7"})
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (True, False, ["added", "added"])
    assert step["result"]["status"] == "success" and step["result"]["correlation_id"] == "INC-7"
    assert server.members() == set(users)

    step = playbooks.run("soar.restricted_group.membership", {"users": users})
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (False, False, ["already-member", "already-member"])
    assert server.members() == set(users)

    step = playbooks.run("soar.restricted_group.membership", {"users": users[:1], "state": "absent"}, check_mode=True)
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (True, False, ["would-remove"])
    assert step["result"]["dry_run"] is True
    assert server.members() == set(users)

    step = playbooks.run("soar.restricted_group.membership", {"users": users[:1], "state": "absent"})
    assert (step["changed"], outcomes(step)) == (True, ["removed"])
    assert server.members() == set(users[1:])

    step = playbooks.run("soar.restricted_group.membership", {"users": users[:1], "state": "absent"})
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (False, False, ["not-member"])
    assert server.members() == set(users[1:])

    step = playbooks.run("soar.restricted_group.group_info", {"users": users})
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (False, False, ["not-member", "member"])
    assert step["connection"]["providers"][0]["outcome"] == "connected"
    assert server.members() == set(users[1:])
    assert not any(TOKEN in output for output in playbooks.outputs)


def test_a_protected_user_fails_the_task_naming_the_user_and_the_kind(playbooks, server):
    step = playbooks.run("soar.restricted_group.membership", {"users": ["user1@corp.example", PROTECTED]})
    assert step["failed"] is True
    assert f"{PROTECTED} (zpa): protected-user" in step["msg"]
    assert step["result"]["status"] == "partial"
    assert [(u["user"], u["outcome"], u["error_kind"]) for u in step["users"]] == [
        ("user1@corp.example", "added", None), (PROTECTED, None, "protected-user")]
    assert step["changed"] is True
    assert server.members() == {"user1@corp.example"}


def test_a_wrong_token_fails_with_auth_failed_and_no_token_appears_in_the_output(playbooks, server):
    step = playbooks.run("soar.restricted_group.membership", {"users": ["user1@corp.example"]}, token=WRONG_TOKEN)
    assert step["failed"] is True and "auth-failed" in step["msg"]
    assert step["users"][0]["error_kind"] == "auth-failed"
    step = playbooks.run("soar.restricted_group.group_info", {}, token=WRONG_TOKEN)
    assert step["failed"] is True and "zpa: auth-failed" in step["msg"]
    assert server.members() == set()
    output = "\n".join(playbooks.outputs)
    assert "auth-failed" in output
    assert WRONG_TOKEN not in output and TOKEN not in output


def test_invalid_input_fails_with_the_refusal_and_sends_nothing(playbooks, server):
    step = playbooks.run("soar.restricted_group.membership", {"users": ["user1@corp.example", "not an email"]})
    assert step["failed"] is True and step["msg"].startswith("invalid-input: ")
    assert step["error_kind"] == "invalid-input" and step["result"]["status"] == "error"
    assert step["changed"] is False
    assert server.members() == set()
    missing = playbooks.folder / "missing.json"
    playbooks.config = missing
    step = playbooks.run("soar.restricted_group.group_info", {})
    assert step["failed"] is True and step["msg"].startswith("invalid-config: ") and str(missing) in step["msg"]


def test_a_restriction_for_a_while_is_listed_then_lifted_by_reconcile(playbooks, server):
    playbooks.config = write_provider_config(playbooks.folder / "config.json", server.base_url, "SOAR_TEST_TOKEN",
                                             cache_dir=str(playbooks.folder / "cache"), state="sqlite:ledger.sqlite3")
    step = playbooks.run("soar.restricted_group.membership",
                         {"users": ["user1@corp.example"], "duration": "2s", "reason": "impossible travel"})
    assert (step["changed"], outcomes(step)) == (True, ["added"]), step
    # A playbook takes seconds to start: the record may have expired already.
    step = playbooks.run("soar.restricted_group.restrictions_info", {"state": "all"})
    assert [(r["user"], r["reason"], r["state"] in ("active", "expired"), r["lifted_at"]) for r in step["restrictions"]] == [
        ("user1@corp.example", "impossible travel", True, None)]
    assert step["changed"] is False and step["restrictions"][0]["expires_at"]
    deadline = time.monotonic() + 30
    while playbooks.run("soar.restricted_group.restrictions_info", {"state": "expired"})["restrictions"] == []:
        assert time.monotonic() < deadline, "the restriction never expired"
        time.sleep(0.5)

    step = playbooks.run("soar.restricted_group.reconcile", {}, check_mode=True)
    assert (step["changed"], outcomes(step), step["result"]["dry_run"]) == (True, ["would-lift"], True)
    assert server.members() == {"user1@corp.example"}
    step = playbooks.run("soar.restricted_group.reconcile", {"correlation_id": "sweep-1"})
    assert (step["changed"], step.get("failed", False), outcomes(step)) == (True, False, ["lifted-expired"])
    assert server.members() == set()
    step = playbooks.run("soar.restricted_group.reconcile", {})
    assert (step["changed"], outcomes(step)) == (False, [])
    step = playbooks.run("soar.restricted_group.restrictions_info", {"user": "user1@corp.example", "state": "lifted"})
    assert [r["lifted_by"] for r in step["restrictions"]] == ["expired"]


def test_restriction_options_on_a_removal_or_both_ends_fail_before_anything_is_sent(playbooks, server):
    step = playbooks.run("soar.restricted_group.membership",
                         {"users": ["user1@corp.example"], "state": "absent", "reason": "done"})
    assert step["failed"] is True and step["error_kind"] == "invalid-input" and "state=present" in step["msg"]
    step = playbooks.run("soar.restricted_group.membership",
                         {"users": ["user1@corp.example"], "duration": "1h", "until": "2099-01-01T00:00:00Z"})
    assert step["failed"] is True and "mutually exclusive" in step["msg"]
    step = playbooks.run("soar.restricted_group.membership", {"users": ["user1@corp.example"], "duration": "400d"})
    assert step["failed"] is True and step["error_kind"] == "invalid-input" and "365 days" in step["msg"]
    step = playbooks.run("soar.restricted_group.restrictions_info", {"state": "gone"})
    assert step["failed"] is True and "active, expired, lifted, all" in step["msg"]
    assert server.members() == set()


def test_the_postgres_ledgers_password_from_a_vault_is_never_printed(playbooks, server):
    url = os.environ.get("SOAR_TEST_POSTGRES")
    assert url, "SOAR_TEST_POSTGRES names the test PostgreSQL server: run the tests with bash scripts/test.sh"
    password = os.environ.get("SOAR_TEST_POSTGRES_PASSWORD", "")
    idp = f"ansible-{os.getpid()}"
    playbooks.config = write_provider_config(playbooks.folder / "config.json", server.base_url, "SOAR_TEST_TOKEN",
                                             cache_dir=str(playbooks.folder / "cache"), state=url)
    config = json.loads(playbooks.config.read_text())
    config["identity_providers"][0]["name"] = idp
    playbooks.config.write_text(json.dumps(config))
    step = playbooks.run("soar.restricted_group.membership",
                         {"users": ["user2@corp.example"], "reason": "from a vault", "state_password": password})
    assert (step["changed"], outcomes(step)) == (True, ["added"]), step
    step = playbooks.run("soar.restricted_group.restrictions_info", {"idp": idp, "state_password": password})
    assert [(r["user"], r["reason"]) for r in step["restrictions"]] == [("user2@corp.example", "from a vault")]
    step = playbooks.run("soar.restricted_group.reconcile", {"idp": idp, "state_password": "wrong-password-0123"})
    assert step["failed"] is True and step["msg"].startswith("invalid-config: ")
    assert server.members() == {"user2@corp.example"}
    output = "\n".join(playbooks.outputs)
    assert password and password not in output and "wrong-password-0123" not in output


def readme_yaml(index: int) -> str:
    """The `index`th YAML block of the README's "Use from Ansible"."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use from Ansible"):]
    start = 0
    for _block in range(index + 1):
        start = section.index("```yaml\n", start) + len("```yaml\n")
    return section[start:section.index("\n```", start)] + "\n"


def readme_playbook() -> str:
    """The playbook of the README's "Use from Ansible"."""
    return readme_yaml(0)


def readme_restriction_playbook() -> str:
    """The README's restriction tasks, as the tasks of a playbook."""
    tasks = "".join(f"    {line}\n" if line else "\n" for line in readme_yaml(1).splitlines())
    return f"- name: Restrictions over time\n  hosts: localhost\n  gather_facts: false\n  tasks:\n{tasks}"


def test_the_readme_playbook_runs_as_pasted(playbooks, server):
    playbook = readme_playbook().replace("/etc/soar/restricted-group.json", str(playbooks.config))
    path = playbooks.folder / "readme.yml"
    path.write_text(playbook)
    printed = playbooks.play(path, extra=("-e", '{"risky_users": ["user1@corp.example"], "incident_id": "INC-9"}'))
    assert "changed=1" in printed
    assert server.members() == {"user1@corp.example"}


def test_the_readme_restriction_tasks_run_as_pasted(playbooks, server):
    playbook = readme_restriction_playbook().replace("/etc/soar/restricted-group.json", str(playbooks.config))
    path = playbooks.folder / "readme-restrictions.yml"
    path.write_text(playbook)
    printed = playbooks.play(path, extra=("-e", '{"risky_users": ["user2@corp.example"], "incident_id": "INC-10"}'))
    assert "changed=1" in printed, printed
    assert server.members() == {"user2@corp.example"}
    assert "impossible travel (INC-10)" in printed


@pytest.mark.parametrize("playbook", [readme_playbook, readme_restriction_playbook])
def test_the_readme_playbooks_pass_ansible_lint(tmp_path, collections, playbook):
    path = tmp_path / "playbook.yml"
    path.write_text(playbook())
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
           "NO_COLOR": "1"}
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
