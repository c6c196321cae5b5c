"""The Splunk SOAR app checked with the SDK's own tools: the manifest `soarapps` generated from the
code, actions through the platform's entry point and through the SDK's local runner against the
simulator (the group's members read from the server after each), and the package `soarapps`
built, installed from its own wheels into a fresh Python 3.13 and run. The asset's token appears
in no result, message, log or file the app writes, in any form."""

import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import venv
from pathlib import Path
from typing import Any

import pytest
from conftest import APP_DIR, APP_NAME, BUILT, GROUP, TOKEN, Simulator, assert_no_token, asset_config, local_run
from soar_sdk.meta.dependencies.constants import DEPENDENCIES_TO_SKIP
from soar_sdk.shims.phantom.encryption_helper import encryption_helper

ALICE = "user1@corp.example"
BOB = "user2@corp.example"
PROTECTED = "user5@corp.example"


class Run:
    """What the platform keeps of one action run: its result's status, message, data, summary."""

    def __init__(self, result: Any) -> None:
        self.status: bool = result.get_status()
        self.message: str = result.get_message()
        self.data: list[dict[str, Any]] = result.get_data()
        self.summary: dict[str, Any] = result.get_summary()

    def outcomes(self) -> dict[str, Any]:
        return {row["user"]: row["outcome"] or row["error_kind"] for row in self.data}


def handle(action: str, asset: dict[str, Any], params: dict[str, Any] | None = None) -> Run:
    """One action as SOAR's spawn runs it: a fresh app, the asset's sensitive fields encrypted."""
    app = importlib.reload(importlib.import_module("src.app")).app
    asset_id = "17"
    config = dict(asset)
    for field in app.asset_cls.fields_requiring_decryption():
        if config.get(field):
            config[field] = encryption_helper.encrypt(config[field], salt=asset_id)
    spec = {
        "identifier": action,
        "action": action,
        "asset_id": asset_id,
        "container_id": 4711,
        "config": {"app_version": "0.1.0", "directory": ".", "main_module": "src.app:app", **config},
        "parameters": [params or {}],
    }
    app.handle(json.dumps(spec))
    results = app.actions_manager.get_results()
    assert len(results) == 1, [r.get_message() for r in results]
    return Run(results[0])


def manifest() -> dict[str, Any]:
    path = BUILT / f"{APP_NAME}.json"
    assert path.is_file(), "bash scripts/build-splunk-soar-app.sh generates the manifest"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def test_the_manifest_soarapps_generated_declares_the_asset_the_actions_and_their_data_paths() -> None:
    generated = manifest()
    configuration = generated["configuration"]
    assert configuration["token"]["data_type"] == "password" and configuration["token"]["required"]
    assert configuration["state_password"]["data_type"] == "password"
    assert configuration["allow_http"]["default"] is False
    assert configuration["profile"]["value_list"] == ["zpa", "zia", "zidentity", "generic"]
    actions = {action["identifier"]: action for action in generated["actions"]}
    assert {name: action["type"] for name, action in actions.items()} == {
        "test_connectivity": "test",
        "add_to_restricted_group": "contain",
        "remove_from_restricted_group": "correct",
        "check_membership": "investigate",
        "list_restrictions": "investigate",
        "reconcile_restrictions": "correct",
    }
    add = actions["add_to_restricted_group"]
    assert set(add["parameters"]) == {"users", "dry_run", "duration", "until", "reason"}
    assert add["parameters"]["users"]["primary"] and "email" in add["parameters"]["users"]["contains"]
    paths = {output["data_path"] for output in add["output"]}
    for path in ("data.*.outcome", "data.*.error_kind", "data.*.user", "summary.added", "summary.already_member"):
        assert f"action_result.{path}" in paths, path
    assert "action_result.summary.failed" in paths
    restrictions = {output["data_path"] for output in actions["list_restrictions"]["output"]}
    assert {"action_result.data.*.expires_at", "action_result.data.*.reason"} <= restrictions
    assert not actions["add_to_restricted_group"]["read_only"] and actions["check_membership"]["read_only"]
    wheels = [wheel["input_file"] for wheel in generated["pip313_dependencies"]["wheel"]]
    ours = [wheel for wheel in wheels if "soar_restricted_group" in wheel]
    assert ours and ours[0].endswith("-cp311-abi3-manylinux_2_28_x86_64.whl"), ours


def test_a_restriction_through_the_platforms_entry_point_changes_the_server_as_reported(
    simulator: Any, home: Path
) -> None:
    asset = asset_config(simulator, protected_users=PROTECTED)
    assert handle("test_connectivity", asset).status

    dry = handle("add_to_restricted_group", asset, {"users": ALICE, "dry_run": True})
    assert (dry.status, dry.outcomes()) == (True, {ALICE: "would-add"})
    assert simulator.members() == set()

    added = handle("add_to_restricted_group", asset, {"users": f"{ALICE}, {BOB}", "reason": "impossible travel"})
    assert (added.status, added.outcomes()) == (True, {ALICE: "added", BOB: "added"}), added.message
    assert (added.summary["added"], added.summary["failed"], added.summary["status"]) == (2, 0, "success")
    assert simulator.members() == {ALICE, BOB}

    again = handle("add_to_restricted_group", asset, {"users": ALICE})
    assert (again.status, again.summary["already_member"]) == (True, 1)
    checked = handle("check_membership", asset, {"users": f"{ALICE},user3@corp.example"})
    assert checked.outcomes() == {ALICE: "member", "user3@corp.example": "not-member"}

    listed = handle("list_restrictions", asset, {})
    assert sorted((r["user"], r["reason"], r["correlation_id"]) for r in listed.data) == [
        (ALICE, "impossible travel", "soar-container-4711"),
        (BOB, "impossible travel", "soar-container-4711"),
    ]
    assert listed.summary == {"restrictions": 2}

    removed = handle("remove_from_restricted_group", asset, {"users": BOB})
    assert (removed.status, removed.outcomes()) == (True, {BOB: "removed"})
    assert simulator.members() == {ALICE}


def test_a_partial_run_fails_naming_each_failed_user_and_keeps_the_data(simulator: Any, home: Path) -> None:
    asset = asset_config(simulator, protected_users=PROTECTED)
    run = handle("add_to_restricted_group", asset, {"users": f"{ALICE}, {PROTECTED}, nobody@corp.example"})
    assert run.status is False
    assert run.message == (
        f"add-to-group partial: {PROTECTED} (zscaler): protected-user; nobody@corp.example (zscaler): user-not-found"
    )
    assert run.outcomes() == {ALICE: "added", PROTECTED: "protected-user", "nobody@corp.example": "user-not-found"}
    assert (run.summary["added"], run.summary["failed"], run.summary["status"]) == (1, 2, "partial")
    assert simulator.members() == {ALICE}


@pytest.mark.parametrize(
    "params, says",
    [
        ({"users": "not an email"}, "invalid-input"),
        ({"users": ALICE, "duration": "400d"}, "at most 365 days"),
        ({"users": ALICE, "duration": "1h", "until": "2099-01-01T00:00:00Z"}, "not both"),
        ({"users": ALICE, "reason": "two\nlines"}, "one line"),
    ],
)
def test_bad_input_fails_with_the_refusal_and_sends_nothing(
    simulator: Any, home: Path, params: dict[str, Any], says: str
) -> None:
    run = handle("add_to_restricted_group", asset_config(simulator), params)
    assert run.status is False and "invalid-input" in run.message and says in run.message, run.message
    assert run.data == []
    assert simulator.members() == set()


@pytest.mark.parametrize(
    "change, says",
    [
        ({"token": "short"}, "invalid-config"),
        ({"base_url": "http://scim.example.com/v2"}, "http"),
        ({"idp_name": "Not A Name"}, "name"),
        ({"restricted_group": None}, "restricted_group"),
    ],
)
def test_a_misconfigured_asset_fails_every_action_naming_the_setting(
    simulator: Any, home: Path, change: dict[str, Any], says: str
) -> None:
    asset = {**asset_config(simulator), **change}
    for action, params in (("test_connectivity", None), ("add_to_restricted_group", {"users": ALICE})):
        run = handle(action, asset, params)
        assert run.status is False and "misconfiguration" in run.message.lower() and says in run.message, run.message
        assert_no_token(run.message, "the message")
    assert simulator.members() == set()


def test_a_wrong_token_fails_test_connectivity_with_auth_failed(simulator: Any, home: Path) -> None:
    wrong = "wrong-token-for-soar-0123456789"
    run = handle("test_connectivity", {**asset_config(simulator), "token": wrong})
    assert run.status is False and "auth-failed" in run.message, run.message
    assert wrong not in run.message


def test_a_restriction_for_a_while_is_lifted_by_reconcile(simulator: Any, home: Path) -> None:
    asset = asset_config(simulator)
    added = handle("add_to_restricted_group", asset, {"users": ALICE, "duration": "1s", "reason": "lateral movement"})
    assert added.outcomes() == {ALICE: "added"}
    deadline = time.monotonic() + 30
    while not handle("list_restrictions", asset, {"state": "expired"}).data:
        assert time.monotonic() < deadline, "the restriction never expired"
        time.sleep(0.2)
    dry = handle("reconcile_restrictions", asset, {"dry_run": True})
    assert dry.outcomes() == {ALICE: "would-lift"} and simulator.members() == {ALICE}
    lifted = handle("reconcile_restrictions", asset, {})
    assert (lifted.status, lifted.outcomes(), lifted.summary["lifted_expired"]) == (True, {ALICE: "lifted-expired"}, 1)
    assert simulator.members() == set()
    record = handle("list_restrictions", asset, {"user": ALICE, "state": "lifted"}).data
    assert [(r["lifted_by"], r["reason"]) for r in record] == [("expired", "lateral movement")]


@pytest.mark.parametrize(
    "simulator", [("--quirk", "echo-token-encoded"), ("--quirk", "echo-token-as-text")], indirect=True
)
def test_the_token_is_in_no_result_log_or_file_the_app_writes(simulator: Any, home: Path) -> None:
    asset = asset_config(simulator)
    seen: list[str] = []
    for action, params in (
        ("test_connectivity", None),
        ("add_to_restricted_group", {"users": f"{ALICE}, nobody@corp.example"}),
        ("check_membership", {"users": "id:does-not-exist"}),
        ("reconcile_restrictions", {}),
        ("list_restrictions", {"state": "all"}),
    ):
        run = local_run(action, asset, params, home)
        seen += [run.stdout, run.stderr]
        result = handle(action, asset, params)
        seen += [result.message, json.dumps(result.data), json.dumps(result.summary)]
    assert simulator.members() == {ALICE}
    for index, text in enumerate(seen):
        assert_no_token(text, f"output {index}")
    written = [path for folder in ("data", "cache") for path in (home / folder).rglob("*") if path.is_file()]
    assert any(path.name.endswith(".sqlite3") for path in written), written
    for path in written:
        assert_no_token(path.read_bytes().decode("latin-1"), str(path))


def test_the_local_runner_runs_each_action_as_a_user_would(simulator: Any, home: Path) -> None:
    asset = asset_config(simulator)
    run = local_run("add_to_restricted_group", asset, {"users": ALICE, "duration": "24h"}, home)
    assert run.returncode == 0, run.stderr
    assert "Action success: True" in run.stdout and '"outcome": "added"' in run.stdout, run.stdout
    assert simulator.members() == {ALICE}
    run = local_run("remove_from_restricted_group", asset, {"users": ALICE}, home)
    assert "Action success: True" in run.stdout and '"outcome": "removed"' in run.stdout, run.stdout
    assert simulator.members() == set()


def test_the_package_installs_from_its_own_wheels_and_runs(simulator: Any, home: Path) -> None:
    package = BUILT / f"{APP_NAME}.tgz"
    assert package.is_file(), "bash scripts/build-splunk-soar-app.sh builds the package"
    with tarfile.open(package) as archive:
        names = archive.getnames()
        archive.extractall(home / "unpacked", filter="data")
    app_dir = home / "unpacked" / APP_NAME
    packaged = json.loads((app_dir / "manifest.json").read_text())
    wheels = [app_dir / wheel["input_file"] for wheel in packaged["pip313_dependencies"]["wheel"]]
    assert all(wheel.is_file() for wheel in wheels), [w for w in wheels if not w.is_file()]
    assert f"{APP_NAME}/wheels/shared/soar_restricted_group-0.1.0-cp311-abi3-manylinux_2_28_x86_64.whl" in names
    assert not any("none-any" in name and "wasmtime" in name for name in names)

    # What SOAR does with the package: its wheels into a fresh Python 3.13, then the app's action.
    fresh = home / "fresh"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # The packages SOAR's own Python carries, which the SDK leaves out of every app package.
    done = subprocess.run(
        [*install, *sorted(DEPENDENCIES_TO_SKIP)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [*install, "--no-index", *map(str, wheels)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    asset_file = home / "asset.json"
    asset_file.write_text(json.dumps(asset_config(simulator)))
    done = subprocess.run(
        [str(python), "src/app.py", "action", "test_connectivity", "-a", str(asset_file)],
        cwd=app_dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and "Action success: True" in done.stdout, done.stdout + done.stderr
    assert_no_token(done.stdout + done.stderr, "the packaged app's output")


def test_the_readme_local_run_snippet_runs_as_written(tmp_path: Path, home: Path) -> None:
    readme = (APP_DIR.parents[1] / "README.md").read_text()
    section = readme[readme.index("## Use from Splunk SOAR") :]
    section = section[section.index("**Run an action without SOAR**") :]
    start = section.index("```sh\n") + len("```sh\n")
    script = section[start : section.index("\n```", start)] + "\n"
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"users": [{"userName": "alice@corp.example"}], "groups": [{"displayName": GROUP}]}))
    simulator = Simulator("--seed", str(seed), generate=False)
    try:
        # The tenant's values, and plain http for the simulator on loopback.
        script = script.replace("https://scim1.private.zscaler.com/scim/1/144118148382065427/v2", simulator.base_url)
        script = script.replace("REPLACE-WITH-THE-SCIM-TOKEN", TOKEN)
        script = script.replace(
            f'"restricted_group": "{GROUP}"}}', f'"restricted_group": "{GROUP}", "allow_http": true}}'
        )
        shutil.copytree(APP_DIR / "src", tmp_path / "src")
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "NO_COLOR": "1"}
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0 and "Action success: True" in done.stdout, done.stdout + done.stderr
        assert simulator.members() == {"alice@corp.example"}
        assert_no_token(done.stdout + done.stderr, "the snippet's output")
    finally:
        simulator.stop()
