"""The collection under real `ansible-playbook`, installed with `ansible-galaxy` as a user would,
against `soar-host simulator` on loopback: after every step the group's members are read from the
server, and no form of the token appears in anything Ansible prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
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


def readme_playbook() -> str:
    """The playbook of the README's "Use from Ansible"."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use from Ansible"):]
    start = section.index("```yaml\n") + len("```yaml\n")
    return section[start:section.index("\n```", start)] + "\n"


def test_the_readme_playbook_runs_as_pasted(playbooks, server):
    playbook = readme_playbook().replace("/etc/soar/restricted-group.json", str(playbooks.config))
    path = playbooks.folder / "readme.yml"
    path.write_text(playbook)
    printed = playbooks.play(path, extra=("-e", '{"risky_users": ["user1@corp.example"], "incident_id": "INC-9"}'))
    assert "changed=1" in printed
    assert server.members() == {"user1@corp.example"}


def test_the_readme_playbook_passes_ansible_lint(tmp_path, collections):
    path = tmp_path / "playbook.yml"
    path.write_text(readme_playbook())
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
           "NO_COLOR": "1"}
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", str(path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
