"""The app against `soar-host simulator` on loopback, run the ways the SDK runs it: the platform's
entry point (`app.handle` with an asset whose sensitive fields are encrypted, as SOAR hands them
over) and the SDK's local runner (`python src/app.py action ...`). Every form of the token a leak
could take, for the tests that search outputs and files for it."""

import base64
import html
import importlib.util
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parents[1]
ROOT = APP_DIR.parents[1]
sys.path.insert(0, str(APP_DIR))
# The Python package's test simulator, by path: its module is a conftest too.
_spec = importlib.util.spec_from_file_location("python_host_tests", ROOT / "hosts" / "python" / "tests" / "conftest.py")
assert _spec is not None and _spec.loader is not None
python_host_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(python_host_tests)
GROUP: str = python_host_tests.GROUP
TOKEN: str = python_host_tests.TOKEN
Simulator = python_host_tests.Simulator

BUILT = ROOT / "target" / "splunk-soar"
APP_NAME = "zscaler_restricted_group"


def token_forms(token: str) -> list[str]:
    """The token as a leak could carry it: as is, percent-encoded, JSON-escaped, as HTML
    entities, in base64 (of itself, of the header, of the SDK's stand-in encryption)."""
    return [
        token,
        urllib.parse.quote(token, safe=""),
        "".join(f"%{b:02X}" for b in token.encode()),
        "".join(f"\\u{ord(c):04x}" for c in token),
        "".join(f"&#{ord(c)};" for c in token),
        "".join(f"&#x{ord(c):x};" for c in token),
        html.escape(token),
        base64.b64encode(token.encode()).decode()[:-4],
        base64.b64encode(f"Bearer {token}".encode()).decode()[:-4],
    ]


def assert_no_token(text: str, where: str) -> None:
    for form in token_forms(TOKEN):
        assert form not in text, f"a form of the token ({form[:12]}...) in {where}"


def asset_config(simulator: Any, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": simulator.base_url,
        "token": TOKEN,
        "restricted_group": GROUP,
        "allow_http": True,
        **extra,
    }


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[Any]:
    sim = Simulator(*getattr(request, "param", ()))
    yield sim
    sim.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data and cache folders of the app's user (its default ledger, compiled cache, locks)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def local_run(
    action: str, asset: dict[str, Any], params: dict[str, Any] | None, folder: Path, app_dir: Path = APP_DIR
) -> subprocess.CompletedProcess[str]:
    """The SDK's local runner: `python src/app.py action ACTION -a asset.json [-p params.json]`."""
    asset_file = folder / "asset.json"
    asset_file.write_text(json.dumps(asset))
    command = [sys.executable, "src/app.py", "action", action, "-a", str(asset_file)]
    if params is not None:
        params_file = folder / "params.json"
        params_file.write_text(json.dumps(params))
        command += ["-p", str(params_file)]
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(command, cwd=app_dir, capture_output=True, text=True, env=env, timeout=300, check=False)
