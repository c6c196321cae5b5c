"""The collection's Event-Driven Ansible rulebooks under real `ansible-rulebook` (Java 17, Drools),
the collection installed by `ansible-galaxy`: events POSTed to the built-in webhook source restrict
and lift users, and the built-in generic source drives reconcile on a schedule. After each event
the group's members are read from the simulator; `ansible-lint --offline` validates every rulebook."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "hosts" / "python" / "tests"))
from conftest import TOKEN, Simulator, write_provider_config  # noqa: E402
from test_playbooks import collections  # noqa: E402,F401  pylint: disable=unused-import

BIN = Path(sys.executable).parent
RULEBOOKS = ROOT / "hosts" / "ansible" / "extensions" / "eda" / "rulebooks"
HOOK_TOKEN = "webhook-token-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def eventually(what: str, check: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.3)


@pytest.fixture
def server() -> Iterator[Simulator]:
    simulator = Simulator()
    yield simulator
    simulator.stop()


class Rulebook:
    """One `ansible-rulebook` run of a collection rulebook, stopped when the test ends."""

    def __init__(self, name: str, folder: Path, collections: Path, variables: dict) -> None:
        self.port = free_port()
        variables = {"webhook_host": "127.0.0.1", "webhook_port": self.port, "webhook_token": HOOK_TOKEN, **variables}
        (folder / "vars.json").write_text(json.dumps(variables))
        # The interpreter the modules run with is the one Ansible runs with, which has the wheel.
        (folder / "inventory.json").write_text(json.dumps({"all": {"hosts": {"localhost": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_COLLECTIONS_PATH": str(collections),
               "ANSIBLE_HOME": str(folder / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(folder / "ansible-tmp"),
               "ANSIBLE_NOCOLOR": "1", "SOAR_TEST_TOKEN": TOKEN, "XDG_DATA_HOME": str(folder / "data")}
        self.log = folder / f"{name}.log"
        self.process = subprocess.Popen(
            [str(BIN / "ansible-rulebook"), "--rulebook", f"soar.restricted_group.{name}", "--inventory",
             str(folder / "inventory.json"), "--vars", str(folder / "vars.json"), "--verbose"],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=folder)

    def output(self) -> str:
        return self.log.read_text()

    def post(self, event: dict, token: str = HOOK_TOKEN) -> int:
        """POSTs an event to the webhook once it listens; returns the HTTP status."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/endpoint", data=json.dumps(event).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, self.output()
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return answer.status
            except urllib.error.HTTPError as refused:
                return refused.code
            except OSError:
                assert time.monotonic() < deadline, f"the webhook never listened:\n{self.output()}"
                time.sleep(0.3)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def rulebooks(tmp_path: Path, collections: Path, server: Simulator) -> Iterator[Callable[[str], Rulebook]]:
    config = write_provider_config(tmp_path / "config.json", server.base_url, "SOAR_TEST_TOKEN",
                                   cache_dir=str(tmp_path / "cache"), state=f"sqlite:{tmp_path / 'ledger.sqlite3'}")
    started: list[Rulebook] = []

    def start(name: str, **variables) -> Rulebook:
        folder = tmp_path / name
        folder.mkdir()
        rulebook = Rulebook(name, folder, collections, {"restricted_group_config": str(config), **variables})
        started.append(rulebook)
        return rulebook

    yield start
    for rulebook in started:
        rulebook.stop()
        assert TOKEN not in rulebook.output()


def restrictions(tmp_path: Path, state: str = "all", config: str = "config.json") -> list[dict]:
    done = subprocess.run([str(BIN / "soar-host"), "--config", str(tmp_path / config), "restrictions", "--state", state],
                          capture_output=True, text=True, env={**os.environ, "SOAR_TEST_TOKEN": TOKEN}, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["restrictions"]


def test_a_risk_event_restricts_its_users_for_its_duration_and_a_cleared_event_lifts_them(rulebooks, server, tmp_path):
    restrict = rulebooks("restrict_risky_users")
    event = {"action": "restrict", "users": ["user1@corp.example", "user2@corp.example"], "duration": "2h",
             "reason": "impossible travel", "incident_id": "INC-77"}
    assert restrict.post(event) == 200
    eventually("the users are restricted", lambda: server.members() == {"user1@corp.example", "user2@corp.example"})
    records = restrictions(tmp_path)
    assert sorted((r["user"], r["reason"], r["correlation_id"], r["expires_at"] is not None) for r in records) == [
        ("user1@corp.example", "impossible travel", "INC-77", True),
        ("user2@corp.example", "impossible travel", "INC-77", True)]
    # An event without the webhook's token, and one for another rule, change nothing.
    assert restrict.post({**event, "users": ["user3@corp.example"]}, token="not-the-hook-token") == 401
    assert restrict.post({"action": "lift", "users": ["user1@corp.example"]}) == 200

    lift = rulebooks("lift_restrictions")
    assert lift.post({"action": "lift", "users": ["user1@corp.example"], "incident_id": "INC-77"}) == 200
    eventually("user1's restriction is lifted", lambda: server.members() == {"user2@corp.example"})
    assert [r["lifted_by"] for r in restrictions(tmp_path, "lifted")] == ["remove-from-group"]
    assert "user3@corp.example" not in server.members()


def test_reconcile_on_a_schedule_lifts_a_restriction_once_it_ends(rulebooks, server, tmp_path):
    restrict = rulebooks("restrict_risky_users")
    assert restrict.post({"action": "restrict", "users": ["user4@corp.example"], "duration": "3s"}) == 200
    eventually("the user is restricted", lambda: server.members() == {"user4@corp.example"})
    rulebooks("reconcile_on_schedule", reconcile_interval_seconds=2)
    eventually("the expired restriction is lifted", lambda: server.members() == set())
    eventually("the record says so", lambda: [r["lifted_by"] for r in restrictions(tmp_path, "lifted")] == ["expired"])


def test_every_rulebook_passes_ansible_lint(tmp_path, collections):
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
           "NO_COLOR": "1"}
    paths = sorted(RULEBOOKS.glob("*.yml")) + sorted((ROOT / "hosts" / "ansible" / "playbooks").glob("*.yml"))
    assert len(paths) == 5
    done = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production", *map(str, paths)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def readme_snippet(section: str) -> str:
    """The shell snippet of a README section."""
    readme = (ROOT / "README.md").read_text()
    text = readme[readme.index(f"## {section}"):]
    start = text.index("```sh\n") + len("```sh\n")
    return text[start:text.index("\n```", start)] + "\n"


def test_the_readme_rulebook_snippet_runs_as_written(tmp_path, collections):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"users": [{"userName": "alice@corp.example"}],
                                "groups": [{"displayName": "ZPA Restricted Users"}]}))
    simulator = Simulator("--seed", str(seed), generate=False)
    try:
        config = write_provider_config(tmp_path / "restricted-group.json", simulator.base_url, "SOAR_TEST_TOKEN",
                                       cache_dir=str(tmp_path / "cache"), state=f"sqlite:{tmp_path / 'ledger.sqlite3'}")
        port = str(free_port())
        script = readme_snippet("Use from Event-Driven Ansible").replace("/etc/soar/restricted-group.json", str(config))
        script = script.replace("5000", port)
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_COLLECTIONS_PATH": str(collections),
               "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_NOCOLOR": "1", "SOAR_TEST_TOKEN": TOKEN}
        shell = subprocess.Popen(["bash", "-e", "-c", script], cwd=tmp_path, env=env, start_new_session=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            eventually("alice is restricted", lambda: simulator.members() == {"alice@corp.example"})
            records = restrictions(tmp_path, config="restricted-group.json")
            assert [(r["user"], r["reason"]) for r in records] == [("alice@corp.example", "impossible travel")]
        finally:
            os.killpg(shell.pid, 15)
            output = shell.communicate(timeout=60)[0]
        assert TOKEN not in output
    finally:
        simulator.stop()
