"""What a connector does without the plugin: one authenticated GET with the standard library
(`python plain_get.py URL`, the token in BENCH_TOKEN). The yardstick of the per-process benchmark."""

import json
import os
import sys
import urllib.request

request = urllib.request.Request(
    sys.argv[1], headers={"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}", "Accept": "application/scim+json"}
)
with urllib.request.urlopen(request, timeout=30) as answer:
    json.load(answer)
