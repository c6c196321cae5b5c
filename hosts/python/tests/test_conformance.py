"""The conformance scenarios (tests/conformance/scenarios/*.json) through the Python CLI: each
starts its own simulator, runs one command line, and must give the expected document (all but
`message` and `detail`), exit code and members on the server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, TOKEN, Simulator, cli_command, comparable, write_provider_config

SCENARIOS = ROOT / "tests" / "conformance" / "scenarios"
WRONG_TOKEN = "conformance-wrong-token-42"
def scenarios(host: str) -> list[dict]:
    found = [json.loads(path.read_text()) for path in sorted(SCENARIOS.glob("*.json"))]
    return [s for s in found if host in s.get("hosts", ["rust", "python", "node"])]


def simulator_flags(scenario: dict, folder: Path) -> list[str]:
    """The `soar-host simulator` flags a scenario's `simulator` and `seed` ask for."""
    setup = scenario.get("simulator", {})
    flags = ["--generate-users", str(setup.get("users", 5)), "--generate-members", str(setup.get("members", 0))]
    if "seed" in scenario:
        seed = folder / "seed.json"
        seed.write_text(json.dumps(scenario["seed"]))
        flags += ["--seed", str(seed)]
    for quirk in setup.get("quirks", []):
        flags += ["--quirk", quirk]
    for fault in setup.get("faults", []):
        flags += ["--fault", fault]
    return flags


def run(scenario: dict, command: list[str], folder: Path, cache: Path) -> tuple[dict, int, set]:
    """Runs a scenario with a host's command line: (document, exit code, members after); `cache`
    is the compiled-component cache the runs share."""
    simulator = Simulator(*simulator_flags(scenario, folder), generate=False)
    try:
        config = write_provider_config(folder / "config.json", simulator.base_url, "CONFORMANCE_TOKEN", scenario.get("provider"),
                                       cache_dir=str(cache), **scenario.get("config", {}))
        token = WRONG_TOKEN if scenario.get("token") == "wrong" else TOKEN
        env = {**os.environ, "CONFORMANCE_TOKEN": token}
        done = subprocess.run([*command, "--config", str(config), *scenario["args"]], capture_output=True, text=True, env=env, timeout=120)
        assert TOKEN not in done.stdout + done.stderr and WRONG_TOKEN not in done.stdout + done.stderr
        return json.loads(done.stdout), done.returncode, simulator.members()
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("scenario", scenarios("python"), ids=lambda s: s["name"])
def test_the_python_cli_meets_the_scenario(scenario, tmp_path, shared_cache):
    document, code, members = run(scenario, cli_command("python"), tmp_path, shared_cache)
    assert (comparable(document), code) == (comparable(scenario["document"]), scenario["exit_code"])
    if "members_after" in scenario:  # absent where the server gives no way to read membership
        assert members == set(scenario["members_after"])


def test_the_egress_rule_decides_every_conformance_case(tmp_path, monkeypatch):
    from soar_restricted_group import config as config_module
    from soar_restricted_group.http import EgressPolicy, HttpError

    data = json.loads((ROOT / "tests" / "conformance" / "egress.json").read_text())
    token = "conformance-egress-token-0123"
    monkeypatch.setenv("EGRESS_TOKEN", token)
    providers = [{"name": p["name"], "base_url": p["base_url"], "restricted_group": "G", "token_env": "EGRESS_TOKEN"} for p in data["providers"]]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"identity_providers": providers}))
    policy = EgressPolicy(config_module.load(str(path)).providers)
    wrong = []
    for case in data["cases"]:
        try:
            policy.authorize(case["idp"], case["url"], [tuple(pair) for pair in case.get("headers", [])])
            allowed = True
        except HttpError as denied:
            assert denied.kind == "denied" and token not in denied.message
            allowed = False
        if allowed != case["allowed"]:
            wrong.append(f"{case['idp']} {case['url']} ({case['about']})")
    assert len(data["cases"]) >= 40 and not wrong, "\n".join(wrong)
