"""A `soar-host simulator` on loopback per test, and the two command lines to compare: the
`soar-host` that cargo builds ("rust", `SOAR_HOST_BIN`) and the installed wheel's
`python -m soar_restricted_group` ("python"), which is the same core through the binding."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
SOAR_HOST = os.environ.get("SOAR_HOST_BIN", str(ROOT / "target" / "debug" / "soar-host"))
# The wheel's own `soar-host` console script, beside this Python.
WHEEL_SOAR_HOST = str(Path(sys.executable).parent / "soar-host")
FIXTURES = Path(os.environ.get("SOAR_FIXTURES", str(ROOT / "target" / "fixtures")))
TOKEN = "py-host-token-0123456789abcdef"
# The default restriction ledger of a config without `state` stays under target/ (the test command
# sets its own), never in the user's data folder.
os.environ.setdefault("XDG_DATA_HOME", str(ROOT / "target" / "test-data-home"))
GROUP = "ZPA Restricted Users"


class Simulator:
    def __init__(self, *flags: str, generate: bool = True) -> None:
        env = {**os.environ, "SIM_TOKEN": TOKEN}
        generated = ["--generate-users", "5"] if generate else []
        self.process = subprocess.Popen(
            [WHEEL_SOAR_HOST, "simulator", "--listen", "127.0.0.1:0", "--token-env", "SIM_TOKEN", *generated, *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url: str = json.loads(self.process.stdout.readline())["base_url"]

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.base_url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def members(self) -> set[str]:
        """The userNames in the restricted group, as the server holds them (read without a filter,
        which some quirks refuse)."""
        group = next(g for g in self.get("/Groups?count=1000")["Resources"] if g["displayName"] == GROUP)
        return {self.get(f"/Users/{m['value']}")["userName"] for m in group.get("members", [])}

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    flags = getattr(request, "param", ())
    sim = Simulator(*flags)
    yield sim
    sim.stop()


@pytest.fixture
def config_file(tmp_path: Path, simulator: Simulator) -> ConfigFile:
    def write(token_env: str = "SOAR_TEST_TOKEN", **top: Any) -> str:
        top = {"cache_dir": str(tmp_path / "cache"), **top}
        return str(write_provider_config(tmp_path / "config.json", simulator.base_url, token_env, **top))

    return write


#: `config_file(token_env=..., **top)` writes the config of the test's simulator; returns its path.
ConfigFile = Callable[..., str]

# Fields each host words its own way; documents must be equal in everything else.
VARYING = {"message", "detail"}


def comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def write_provider_config(
    path: Path, base_url: str, token_env: str, provider: dict[str, Any] | None = None, **top: Any
) -> Path:
    """A config of one provider `zpa` at `base_url` with the restricted group; `provider` keys
    merged into the provider, `top` keys into the config."""
    path.write_text(
        json.dumps(
            {
                "identity_providers": [
                    {
                        "name": "zpa",
                        "base_url": base_url,
                        "restricted_group": GROUP,
                        "token_env": token_env,
                        **(provider or {}),
                    }
                ],
                "allow_http": True,
                **top,
            }
        )
    )
    return path


def cli_command(program: str) -> list[str]:
    """The command line of `soar-host` ("rust") or of the Python host ("python")."""
    return [SOAR_HOST] if program == "rust" else [sys.executable, "-m", "soar_restricted_group"]


def run_cli(program: str, args: list[str], token: str = TOKEN, stdin: str | None = None) -> tuple[Any, int, str]:
    """One command line of either host: (document, exit code, stderr)."""
    command = cli_command(program)
    env = {**os.environ, "SOAR_TEST_TOKEN": token}
    done = subprocess.run(command + args, capture_output=True, text=True, env=env, input=stdin, timeout=120)
    return json.loads(done.stdout), done.returncode, done.stderr
