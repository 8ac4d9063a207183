#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged against the broker's barrier key.

sys.get_encryption_key_status and sys.rotate_encryption_key: the term
moves up by one with each rotation and has an install time.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<root token> \\
        tests/hvac/.venv/bin/python tests/hvac/test_keys.py

Run by the end-to-end test barrier_rotation::hvac_rotates_the_barrier_key.
Exits non-zero at the first failure.
"""

import os
import sys
from importlib.metadata import version

import hvac

from checks import check, finish, step


def run(addr, token):
    client = hvac.Client(url=addr, token=token)

    step("sys.get_encryption_key_status")
    before = client.sys.get_encryption_key_status()["data"]
    check(isinstance(before["term"], int) and before["term"] >= 1, "a term", before)
    check(before["install_time"].endswith("Z"), "an RFC 3339 install time", before)

    step("sys.rotate_encryption_key, twice")
    client.sys.rotate_encryption_key()
    client.sys.rotate_encryption_key()
    after = client.sys.get_encryption_key_status()["data"]
    check(after["term"] == before["term"] + 2, "two terms more", after)
    check(after["install_time"] >= before["install_time"], "a later install time", after)

    step("what was written before still reads")
    check(client.sys.read_policy("default")["data"]["name"] == "default", "the default policy")


def main():
    addr = os.environ.get("VAULT_ADDR")
    token = os.environ.get("VAULT_TOKEN")
    if not addr or not token:
        print("test_keys.py: set VAULT_ADDR and VAULT_TOKEN (a root token)", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr, token))


if __name__ == "__main__":
    sys.exit(main())
