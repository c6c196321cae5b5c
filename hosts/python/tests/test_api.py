"""What the Python API adds to the command line: a config and tokens handed over in memory, actions
in flight from several threads at once, `watch` and `log` callbacks, a Host refused across a fork,
and the wheel's own `soar-host` command (Ctrl-C included)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import GROUP, TOKEN, WHEEL_SOAR_HOST, Simulator
from soar_restricted_group import Host, Refusal
from soar_restricted_group.trace import Recorder
from soar_restricted_group.types import Exchange


def provider(simulator: Simulator, **extra: Any) -> dict[str, Any]:
    return {"name": "zpa", "base_url": simulator.base_url, "restricted_group": GROUP, **extra}


def in_memory(simulator: Simulator, tmp_path: Path, **top: Any) -> Host:
    mapping = {
        "identity_providers": [provider(simulator)],
        "allow_http": True,
        "cache_dir": str(tmp_path / "cache"),
        **top,
    }
    return Host.from_config(mapping, tokens={"zpa": TOKEN}, base_dir=tmp_path, log=lambda level, message: None)


def test_a_config_and_token_given_in_memory_change_the_server_and_touch_no_file(
    simulator: Simulator, tmp_path: Path
) -> None:
    host = in_memory(simulator, tmp_path, audit_log="audit.jsonl")
    report = host.add_to_group(["user1@corp.example"], correlation_id="INC-5")
    assert report.exit_code == 0, report.document
    assert simulator.members() == {"user1@corp.example"}
    # Relative paths resolve against base_dir; the token is in no file the host wrote.
    audit = (tmp_path / "audit.jsonl").read_text()
    assert json.loads(audit.splitlines()[0])["outcome"] == "added"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize(
    "extra, tokens, says",
    [
        ({"token_env": "SOAR_TEST_TOKEN"}, {"zpa": TOKEN}, "its token is given by the caller; remove token_env"),
        ({}, {"zpa": TOKEN, "other": TOKEN}, 'tokens names "other"'),
        ({}, {"zpa": "short"}, "the token is 5 characters long"),
        ({}, {}, "no token"),
    ],
)
def test_tokens_given_in_memory_are_checked_like_any_other(
    simulator: Simulator, tmp_path: Path, extra: dict[str, Any], tokens: dict[str, str], says: str
) -> None:
    mapping = {"identity_providers": [provider(simulator, **extra)], "allow_http": True}
    with pytest.raises(Refusal) as refused:
        Host.from_config(mapping, tokens=tokens, base_dir=tmp_path)
    assert refused.value.kind == "invalid-config"
    assert says in refused.value.message
    assert TOKEN not in refused.value.message and "short" not in refused.value.message.replace("5 characters", "")
    assert simulator.members() == set()


def test_a_mapping_that_is_not_json_is_refused_naming_the_key(simulator: Simulator, tmp_path: Path) -> None:
    mapping = {"identity_providers": [provider(simulator)], "deadline_ms": object()}
    with pytest.raises(Refusal, match=r"deadline_ms"):
        Host.from_config(mapping, tokens={"zpa": TOKEN}, base_dir=tmp_path)


class BothAtOnce(BaseHTTPRequestHandler):
    """Answers a group lookup only once two requests are open at the same time."""

    barrier = threading.Barrier(2, timeout=20)

    def do_GET(self) -> None:
        try:
            self.barrier.wait()
            body = json.dumps({"totalResults": 1, "Resources": [{"id": "9", "displayName": GROUP}]}).encode()
            self.send_response(200)
        except threading.BrokenBarrierError:
            body = b"{}"
            self.send_response(504)
        self.send_header("Content-Type", "application/scim+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def both_at_once() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BothAtOnce)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/scim/v2"
    server.shutdown()
    server.server_close()


def test_actions_from_two_threads_are_in_flight_at_once(both_at_once: str, tmp_path: Path) -> None:
    """The server (Python threads too) answers only when both requests are open: it takes the
    GIL released by each action while it runs."""
    mapping = {
        "identity_providers": [{"name": "p", "base_url": both_at_once, "restricted_group": GROUP}],
        "allow_http": True,
        "cache_dir": str(tmp_path / "cache"),
        "max_retries": 0,
    }
    host = Host.from_config(mapping, tokens={"p": TOKEN}, base_dir=tmp_path, log=lambda level, message: None)
    statuses: list[str] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(host.test_connection().document["status"])) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert statuses == ["success", "success"]


def test_watch_hears_every_exchange_scrubbed_and_its_failures_stay_in_python(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = in_memory(simulator, tmp_path)
    heard: list[Exchange] = []
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)

    def watch(exchange: Exchange) -> None:
        heard.append(exchange)
        raise RuntimeError("a watcher that fails")

    report = host.run("add-to-group", ["user1@corp.example"], watch=watch)
    assert report.exit_code == 0 and simulator.members() == {"user1@corp.example"}
    assert len(heard) == report.document["http_requests"]
    assert [type(failure.exc_value) for failure in reported] == [RuntimeError] * len(heard)
    assert heard[-1]["method"] == "PATCH" and heard[-1]["status"] == 204
    assert ("Authorization", "Bearer [redacted]") in [tuple(header) for header in heard[0]["request_headers"]]
    assert TOKEN not in json.dumps(heard)
    recorder = Recorder()
    host.run("remove-from-group", ["user1@corp.example"], watch=recorder)
    entries = recorder.har()["log"]["entries"]
    assert entries[-1]["request"]["method"] == "PATCH" and TOKEN not in json.dumps(entries)
    with pytest.raises(TypeError, match="watch must be a callable"):
        host.run("test-connection", watch=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("simulator", [("--fault", "rate-limit-seconds")], indirect=True)
def test_a_log_callback_that_fails_does_not_stop_the_action(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    heard: list[tuple[str, str]] = []

    def log(level: str, message: str) -> None:
        heard.append((level, message))
        raise ValueError("a logger that fails")

    mapping = {"identity_providers": [provider(simulator)], "allow_http": True, "cache_dir": str(tmp_path / "cache")}
    host = Host.from_config(mapping, tokens={"zpa": TOKEN}, base_dir=tmp_path, log=log)
    report = host.add_to_group("user1@corp.example")
    assert report.exit_code == 0 and simulator.members() == {"user1@corp.example"}
    assert any(level == "warn" and "retrying" in message for level, message in heard), heard
    assert len(reported) == len(heard) and all(type(failure.exc_value) is ValueError for failure in reported)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_host_made_before_a_fork_says_to_make_it_after(simulator: Simulator, tmp_path: Path) -> None:
    host = in_memory(simulator, tmp_path)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            host.test_connection()
            said = "no error"
        except RuntimeError as error:
            said = str(error)
        os.write(write, said.encode())
        os._exit(0)
    os.close(write)
    said = os.read(read, 4096).decode()
    os.waitpid(child, 0)
    assert "create the Host after forking" in said
    assert host.test_connection().exit_code == 0, "the parent's Host still works"


@pytest.mark.skipif(os.environ.get("SOAR_TEST_WITHOUT_CARGO") != "1", reason="scripts/test.sh runs this without cargo")
def test_the_package_runs_where_there_is_no_rust() -> None:
    assert shutil.which("cargo") is None and shutil.which("rustc") is None
    done = subprocess.run([WHEEL_SOAR_HOST, "describe"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["name"] == "zscaler-restricted-group"


def test_the_wheel_carries_the_whole_command_line() -> None:
    version = subprocess.run([WHEEL_SOAR_HOST, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0
    assert "plugin zscaler-restricted-group" in version.stdout
    demo = subprocess.run(
        [sys.executable, "-m", "soar_restricted_group", "demo"], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    outcomes = [
        step["providers"][0]["users"][0]["outcome"]
        if step["providers"][0]["users"]
        else step["providers"][0]["outcome"]
        for step in json.loads(demo.stdout)["steps"]
    ]
    assert outcomes == ["connected", "added", "already-member", "removed"]


def test_ctrl_c_stops_the_wheels_simulator() -> None:
    process = subprocess.Popen(
        [WHEEL_SOAR_HOST, "simulator", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    assert ready["base_url"].startswith("http://127.0.0.1:")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 130
