"""The installed wheel against a real simulator on loopback: what the server holds after each
action, the same documents, text and exit codes as the cargo-built `soar-host`, and the
sandbox's guarantees through the Python API and the wheel's command line."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import soar_restricted_group
from conftest import (
    FIXTURES,
    ROOT,
    TOKEN,
    ConfigFile,
    Simulator,
    cli_command,
    comparable,
    run_cli,
    write_provider_config,
)
from soar_restricted_group import PLUGIN, Host, LogCallback, Refusal, Report
from soar_restricted_group.types import Document


@pytest.fixture
def host(config_file: ConfigFile, monkeypatch: pytest.MonkeyPatch) -> Host:
    monkeypatch.setenv("SOAR_TEST_TOKEN", TOKEN)
    return Host.from_config_file(config_file(), log=lambda level, message: None)


def test_the_api_changes_membership_on_the_server_and_repeats_are_no_ops(host: Host, simulator: Simulator) -> None:
    added = host.add_to_group(["user1@corp.example", "user2@corp.example"], correlation_id="INC-1")
    assert added.exit_code == 0, added.document
    assert [u["outcome"] for u in added.document["providers"][0]["users"]] == ["added", "added"]
    assert added.document["correlation_id"] == "INC-1"
    assert simulator.members() == {"user1@corp.example", "user2@corp.example"}
    again = host.add_to_group(["user1@corp.example"])
    assert again.document["providers"][0]["users"][0]["outcome"] == "already-member"
    dry = host.remove_from_group(["user1@corp.example"], dry_run=True)
    assert dry.document["providers"][0]["users"][0]["outcome"] == "would-remove"
    assert simulator.members() == {"user1@corp.example", "user2@corp.example"}
    removed = host.remove_from_group(["user1@corp.example"])
    assert removed.document["providers"][0]["users"][0]["outcome"] == "removed"
    assert simulator.members() == {"user2@corp.example"}
    checked = host.check_membership(["user1@corp.example", "user2@corp.example"])
    assert [u["outcome"] for u in checked.document["providers"][0]["users"]] == ["not-member", "member"]
    assert host.test_connection().document["providers"][0]["outcome"] == "connected"


def test_invalid_input_is_a_refusal_document_and_sends_nothing(host: Host, simulator: Simulator) -> None:
    calls: list[Callable[[], Report[Document]]] = [
        lambda: host.add_to_group(["user1@corp.example", "not an email"]),
        lambda: host.add_to_group([]),
        lambda: host.add_to_group(["user1@corp.example"], idp="nope"),
        lambda: host.remove_from_group(["user1@corp.example"], timeout_ms=0),
        lambda: host.add_to_group([42]),  # type: ignore[list-item]
        lambda: host.add_to_group(["user1@corp.example"], correlation_id="two\nlines"),
    ]
    for call in calls:
        report = call()
        assert report.exit_code == 2
        assert report.document["status"] == "error"
        assert report.document["error"]["kind"] == "invalid-input"
    assert simulator.members() == set()


SCENARIOS = [
    ["test-connection"],
    ["add-to-group", "--user", "user1@corp.example", "--user", "user2@corp.example"],
    ["add-to-group", "--user", "user1@corp.example"],
    ["add-to-group", "--user", "user3@corp.example", "--user", "ghost@corp.example"],
    ["check-membership", "--user", "user1@corp.example", "--user", "user4@corp.example"],
    ["remove-from-group", "--dry-run", "--user", "user1@corp.example", "--user", "user4@corp.example"],
    ["remove-from-group", "--user", "user1@corp.example"],
    ["remove-from-group", "--user", "user1@corp.example"],
    ["add-to-group", "--user", "bad email"],
    ["add-to-group", "--user", "admin@corp.example"],
    ["add-to-group", "--max-retries", "1000", "--user", "user1@corp.example"],
    ["frobnicate"],
]


def test_both_command_lines_give_the_same_documents_and_exit_codes(tmp_path: Path) -> None:
    seen = {}
    for program in ("rust", "python"):
        simulator = Simulator()
        try:
            config = write_provider_config(
                tmp_path / f"{program}.json",
                simulator.base_url,
                "SOAR_TEST_TOKEN",
                cache_dir=str(tmp_path / "cache"),
                protected_users=["admin@corp.example"],
            )
            seen[program] = [
                (comparable(document), code)
                for document, code, _ in (
                    run_cli(program, ["--config", str(config), "--correlation-id", "C-1", *args]) for args in SCENARIOS
                )
            ]
            assert simulator.members() == {"user2@corp.example", "user3@corp.example"}, program
        finally:
            simulator.stop()
    for args, rust, python in zip(SCENARIOS, seen["rust"], seen["python"], strict=True):
        assert python == rust, args


def test_a_wrong_token_is_auth_failed_and_no_token_appears_anywhere(
    config_file: ConfigFile, simulator: Simulator
) -> None:
    wrong = "wrong-token-abcdefghijklmnop"
    document, code, stderr = run_cli(
        "python", ["--config", config_file(), "add-to-group", "--user", "user1@corp.example"], token=wrong
    )
    assert code == 1
    assert document["providers"][0]["error"]["kind"] == "auth-failed"
    assert wrong not in json.dumps(document) + stderr


@pytest.mark.parametrize("simulator", [("--quirk", "echo-authorization")], indirect=True)
def test_a_server_echoing_the_token_never_gets_it_into_the_output(
    config_file: ConfigFile, simulator: Simulator
) -> None:
    document, _, stderr = run_cli("python", ["--config", config_file(), "add-to-group", "--user", "user1@corp.example"])
    assert TOKEN not in json.dumps(document) + stderr
    assert simulator.members() == {"user1@corp.example"}


def hostile_config(config_file: ConfigFile, tmp_path: Path, command: str) -> str:
    path = config_file()
    document = json.loads(Path(path).read_text())
    document["identity_providers"][0]["restricted_group"] = command
    document["memory_limit_mib"] = 16
    document["deadline_ms"] = 2000
    with open(path, "w") as out:
        out.write(json.dumps(document))
    return path


@pytest.mark.parametrize(
    "command, kind",
    [
        ("loop", "plugin-timeout"),
        ("alloc", "plugin-out-of-memory"),
        ("panic at the disco", "plugin-panicked"),
        ("trap", "plugin-trapped"),
    ],
)
def test_a_misbehaving_plugin_costs_one_call_with_the_kind_named(
    config_file: ConfigFile, tmp_path: Path, command: str, kind: str
) -> None:
    config = hostile_config(config_file, tmp_path, command)
    document, code, _ = run_cli(
        "python", ["--plugin", str(FIXTURES / "hostile-plain.wasm"), "--config", config, "test-connection"]
    )
    assert code == 1
    assert document["error"]["kind"] == kind, document


def test_the_egress_rule_denies_what_lies_outside_the_base_url(
    config_file: ConfigFile, tmp_path: Path, simulator: Simulator
) -> None:
    outside = simulator.base_url.rsplit("/", 1)[0] + "/../v2/Users"
    other = simulator.base_url.rsplit("/", 1)[0] + "Users"
    for url, verdict in [(simulator.base_url + "/Users", "status 200"), (outside, "denied"), (other, "denied")]:
        config = hostile_config(config_file, tmp_path, f"send zpa GET {url}")
        document, _, _ = run_cli(
            "python", ["--plugin", str(FIXTURES / "hostile-plain.wasm"), "--config", config, "test-connection"]
        )
        assert document["providers"][0]["error"]["message"].startswith(verdict), (url, document)
    config = hostile_config(config_file, tmp_path, f"send zpa GET {simulator.base_url}/Users Authorization: Bearer x")
    document, _, _ = run_cli(
        "python", ["--plugin", str(FIXTURES / "hostile-plain.wasm"), "--config", config, "test-connection"]
    )
    assert document["providers"][0]["error"]["message"].startswith("denied"), document


def test_the_plugin_sees_no_environment_arguments_or_input(config_file: ConfigFile, tmp_path: Path) -> None:
    config = hostile_config(config_file, tmp_path, "env")
    document, _, _ = run_cli(
        "python", ["--plugin", str(FIXTURES / "hostile-plain.wasm"), "--config", config, "test-connection"]
    )
    assert document["providers"][0]["error"]["message"] == "env [] args []"


@pytest.mark.parametrize(
    "name, import_name", [("clock", "wasi:clocks"), ("filesystem", "wasi:filesystem"), ("sockets", "wasi:sockets")]
)
def test_components_importing_more_fail_to_load_by_name(
    config_file: ConfigFile, monkeypatch: pytest.MonkeyPatch, name: str, import_name: str
) -> None:
    monkeypatch.setenv("SOAR_TEST_TOKEN", TOKEN)
    with pytest.raises(Refusal, match=import_name) as refused:
        Host.from_config_file(config_file(), plugin=FIXTURES / f"hostile-{name}.wasm")
    assert refused.value.kind == "plugin-load"


def test_describe_prints_the_manifest_of_the_packaged_component() -> None:
    document, code, _ = run_cli("python", ["describe"])
    rust, _, _ = run_cli("rust", ["describe"])
    assert code == 0
    assert document == rust


def _entries(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in os.listdir(folder) if name.endswith((".cwasm", ".tag"))}


def _describe(config: str, plugin: Path | None = None, log: LogCallback | None = None) -> str:
    name: str = Host.from_config_file(config, plugin=plugin, log=log).describe().document["name"]
    return name


def test_the_compiled_cache_is_used_when_trusted_and_rebuilt_when_an_entry_does_not_match(
    config_file: ConfigFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOAR_TEST_TOKEN", TOKEN)
    config = config_file()
    warnings = []

    def log(level: str, message: str) -> None:
        if level == "warn":
            warnings.append(message)

    _describe(config, log=log)
    folder = tmp_path / "cache"
    first = _entries(folder)
    assert sorted(name.rsplit(".", 1)[1] for name in first) == ["cwasm", "tag"] and not warnings
    assert os.stat(folder / "hmac.key").st_mode & 0o077 == 0
    # A second load reads the entry and writes nothing.
    before = {name: os.stat(folder / name).st_mtime_ns for name in first}
    assert _describe(config, log=log) == "zscaler-restricted-group"
    assert {name: os.stat(folder / name).st_mtime_ns for name in first} == before
    # Another plugin's entry, renamed to stand in for this one, fails its MAC and is rebuilt.
    assert _describe(config, plugin=FIXTURES / "hostile-plain.wasm", log=log)
    other = {name: data for name, data in _entries(folder).items() if name not in first}
    mine_cwasm = next(name for name in first if name.endswith(".cwasm"))
    other_cwasm = next(name for name in other if name.endswith(".cwasm"))
    (folder / mine_cwasm).write_bytes(other[other_cwasm])
    (folder / mine_cwasm.replace(".cwasm", ".tag")).write_bytes(other[other_cwasm.replace(".cwasm", ".tag")])
    assert _describe(config, log=log) == "zscaler-restricted-group"
    assert _entries(folder)[mine_cwasm] == first[mine_cwasm]
    # A corrupt entry is rebuilt, never loaded.
    (folder / mine_cwasm).write_bytes(b"\0" * 100)
    assert _describe(config, log=log) == "zscaler-restricted-group"
    assert _entries(folder)[mine_cwasm] == first[mine_cwasm]
    assert not warnings


def test_a_cache_folder_others_can_write_is_not_trusted_with_compiled_code(
    config_file: ConfigFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOAR_TEST_TOKEN", TOKEN)
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o777)
    warnings = []
    config = config_file(cache_dir=str(folder))
    assert _describe(config, log=lambda level, message: warnings.append(message)) == "zscaler-restricted-group"
    assert [name for name in os.listdir(folder) if name.endswith(".cwasm")] == []
    assert len(warnings) == 1 and "not used for compiled code" in warnings[0] and "chmod 700" in warnings[0]


def test_the_packaged_component_lives_in_the_installed_package_not_a_checkout() -> None:
    assert os.path.isfile(PLUGIN)
    installed = Path(soar_restricted_group.__file__).parent
    assert Path(PLUGIN).parent == installed and installed.parent.name == "site-packages"
    for checkout in (ROOT / "hosts", ROOT / "target" / "wasm32-wasip2"):
        assert not Path(PLUGIN).is_relative_to(checkout)


def test_both_command_lines_print_the_same_text_for_the_same_answers(tmp_path: Path) -> None:
    """Table and JSON output, byte for byte, where every message comes from the plugin."""
    printed = {}
    for program in ("rust", "python"):
        simulator = Simulator()
        try:
            config = write_provider_config(
                tmp_path / f"{program}.json", simulator.base_url, "SOAR_TEST_TOKEN", cache_dir=str(tmp_path / "cache")
            )
            env = {**os.environ, "SOAR_TEST_TOKEN": TOKEN}
            printed[program] = [
                subprocess.run(
                    [*cli_command(program), "--output", output, "--config", str(config), *args],
                    capture_output=True,
                    text=True,
                    env=env,
                ).stdout
                for args in SCENARIOS[:8]
                for output in ("table", "json")
            ]
        finally:
            simulator.stop()
    assert "ghost@corp.example  error    user-not-found: no user ghost@corp.example" in "".join(printed["rust"])
    for rust, python in zip(printed["rust"], printed["python"], strict=True):
        assert python == rust


@pytest.mark.parametrize("simulator", [("--fault", "rate-limit-seconds")], indirect=True)
def test_the_request_log_has_a_line_per_exchange_with_its_purpose(
    config_file: ConfigFile, simulator: Simulator
) -> None:
    config = config_file()
    env = {**os.environ, "SOAR_TEST_TOKEN": TOKEN, "SOAR_HOST_LOG": "debug"}
    done = subprocess.run(
        [
            *cli_command("python"),
            "--config",
            config,
            "--correlation-id",
            "INC-9",
            "add-to-group",
            "--user",
            "user1@corp.example",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    document = json.loads(done.stdout)
    lines = [line for line in done.stderr.splitlines() if line.startswith("soar-host [INC-9] debug: [zpa] ")]
    assert len(lines) == document["http_requests"] == 4
    assert sum(" -> 429 (" in line for line in lines) == 1
    assert any(", attempt 2, because retry after HTTP 429: " in line for line in lines), lines
    assert any(
        line.startswith("soar-host [INC-9] debug: [zpa] PATCH ") and " -> 204 (0 bytes) in " in line for line in lines
    )
    assert TOKEN not in done.stderr


def _trace_projection(har: dict[str, Any], base_url: str) -> list[Any]:
    """What must agree between hosts in a trace: every entry but its timings (and the server's
    timestamps inside answers: the content's size and type stand for it), in a stable order."""

    def text(value: str | None) -> str | None:
        return None if value is None else value.replace(base_url, "BASE")

    return sorted(
        (
            entry["request"]["method"],
            text(entry["request"]["url"]),
            entry["response"]["status"],
            entry["response"]["statusText"],
            entry["response"]["content"]["size"],
            entry["response"]["content"]["mimeType"],
            text((entry["request"].get("postData") or {}).get("text")),
            tuple(sorted(h["name"].lower() for h in entry["request"]["headers"])),
            entry["_doing"],
            entry["_attempt"],
            entry["_reason"],
        )
        for entry in har["log"]["entries"]
    )


def test_a_trace_holds_what_soar_host_traces_and_never_the_token(tmp_path: Path) -> None:
    traced = {}
    for program in ("rust", "python"):
        simulator = Simulator()
        try:
            config = write_provider_config(
                tmp_path / f"{program}.json", simulator.base_url, "SOAR_TEST_TOKEN", cache_dir=str(tmp_path / "cache")
            )
            path = tmp_path / f"{program}.har"
            document, code, _ = run_cli(
                program,
                [
                    "--config",
                    str(config),
                    "--trace",
                    str(path),
                    "add-to-group",
                    "--user",
                    "user1@corp.example",
                    "--user",
                    "ghost@corp.example",
                ],
            )
            assert code == 3, document
            har = json.loads(path.read_text())
            assert len(har["log"]["entries"]) == document["http_requests"]
            assert os.stat(path).st_mode & 0o077 == 0
            assert TOKEN not in path.read_text()
            traced[program] = _trace_projection(har, simulator.base_url)
        finally:
            simulator.stop()
    assert any(entry[0] == "PATCH" and entry[2] == 204 for entry in traced["python"])
    assert traced["python"] == traced["rust"]


def test_a_trace_path_that_cannot_be_written_refuses_the_action_before_anything_is_sent(
    config_file: ConfigFile, simulator: Simulator, tmp_path: Path
) -> None:
    document, code, _ = run_cli(
        "python", ["--config", config_file(), "--trace", str(tmp_path), "add-to-group", "--user", "user1@corp.example"]
    )
    assert (code, document["error"]["kind"]) == (2, "invalid-input")
    assert document["error"]["message"].startswith(f"--trace {tmp_path}: cannot write there")
    assert simulator.members() == set()
