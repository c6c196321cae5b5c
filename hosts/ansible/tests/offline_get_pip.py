"""Stands in for the pip bootstrap script ansible-test downloads from a host that these machines
cannot reach: installs pip with the standard library's ensurepip, then what ansible-test asks for
from the package index. ensurepip runs in its own process: it points PIP_CONFIG_FILE at /dev/null
in the process that calls it, which would drop the machine's pip settings (its CA bundle)."""

import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade"])
options = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *options]))
