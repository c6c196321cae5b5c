"""The conformance scenarios (tests/conformance/scenarios/*.json) through the wheel's CLI: each
starts its own simulator, runs one command line, and must give the expected document (all but
`message` and `detail`), exit code and members on the server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TOKEN, Simulator, cli_command, comparable, write_provider_config

SCENARIOS = ROOT / "tests" / "conformance" / "scenarios"
WRONG_TOKEN = "conformance-wrong-token-42"


def scenarios(host: str) -> list[dict[str, Any]]:
    found = [json.loads(path.read_text()) for path in sorted(SCENARIOS.glob("*.json"))]
    return [s for s in found if host in s.get("hosts", ["rust", "python", "node"])]


def simulator_flags(scenario: dict[str, Any], folder: Path) -> list[str]:
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


def run(scenario: dict[str, Any], command: list[str], folder: Path, cache: Path) -> tuple[Any, int, set[str]]:
    """Runs a scenario with a host's command line: (document, exit code, members after); `cache`
    is the compiled-component cache the runs share."""
    simulator = Simulator(*simulator_flags(scenario, folder), generate=False)
    try:
        config = write_provider_config(
            folder / "config.json",
            simulator.base_url,
            "CONFORMANCE_TOKEN",
            scenario.get("provider"),
            cache_dir=str(cache),
            **scenario.get("config", {}),
        )
        token = WRONG_TOKEN if scenario.get("token") == "wrong" else TOKEN
        env = {**os.environ, "CONFORMANCE_TOKEN": token}
        done = subprocess.run(
            [*command, "--config", str(config), *scenario["args"]], capture_output=True, text=True, env=env, timeout=120
        )
        assert TOKEN not in done.stdout + done.stderr and WRONG_TOKEN not in done.stdout + done.stderr
        return json.loads(done.stdout), done.returncode, simulator.members()
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("scenario", scenarios("python"), ids=lambda s: s["name"])
def test_the_python_cli_meets_the_scenario(scenario: dict[str, Any], tmp_path: Path, shared_cache: Path) -> None:
    document, code, members = run(scenario, cli_command("python"), tmp_path, shared_cache)
    assert (comparable(document), code) == (comparable(scenario["document"]), scenario["exit_code"])
    if "members_after" in scenario:  # absent where the server gives no way to read membership
        assert members == set(scenario["members_after"])
