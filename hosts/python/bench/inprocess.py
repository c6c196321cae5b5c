"""In-process timings of the Python package for `cargo bench -p soar-host-cli --bench python_host`:
`python inprocess.py PLUGIN CONFIG ROUNDS` prints medians in milliseconds as one JSON object."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

from soar_restricted_group import Host


def median_ms(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    plugin, config_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def load() -> Host:
        return Host.from_config_file(config_path, plugin, log=lambda level, message: None)

    host = load()  # warms the compiled cache

    def add_and_remove() -> None:
        assert host.add_to_group(["user1@corp.example"]).exit_code == 0
        assert host.remove_from_group(["user1@corp.example"]).exit_code == 0

    def test_connection() -> None:
        assert host.test_connection().exit_code == 0

    print(
        json.dumps(
            {
                "load_from_cache": median_ms(rounds, load),
                "test_connection": median_ms(rounds, test_connection),
                "add_and_remove": median_ms(rounds, add_and_remove),
            }
        )
    )


if __name__ == "__main__":
    main()
