#!/usr/bin/env python3
"""hvac, the Python Vault client, used unchanged to initialize, unseal and rekey.

Against a broker on the shamir seal that has not been initialized:
sys.initialize, sys.read_seal_status, sys.submit_unseal_key(s),
sys.seal, sys.start_rekey and sys.rekey_multi, then
sys.rotate_encryption_key and sys.get_encryption_key_status.

    VAULT_ADDR=http://127.0.0.1:8200 tests/hvac/.venv/bin/python tests/hvac/test_seal.py

Run by the end-to-end test seal::hvac_initializes_unseals_and_rekeys.
Exits non-zero at the first failure.
"""

import os
import sys
from importlib.metadata import version

import hvac

from checks import check, finish, step


def run(addr):
    client = hvac.Client(url=addr)

    step("sys.is_initialized before")
    check(client.sys.is_initialized() is False, "not initialized")

    step("sys.initialize")
    init = client.sys.initialize(secret_shares=5, secret_threshold=3)
    keys = init["keys"]
    check(len(keys) == 5 and len(init["keys_base64"]) == 5, "five shares", init)
    client.token = init["root_token"]
    check(client.sys.is_initialized() is True, "initialized")

    step("sys.read_seal_status")
    status = client.sys.read_seal_status()
    check(status["sealed"] is True and status["t"] == 3 and status["n"] == 5, "sealed, 3 of 5", status)

    step("sys.submit_unseal_key, one at a time")
    status = client.sys.submit_unseal_key(keys[0])
    check(status["progress"] == 1 and status["sealed"] is True, "progress 1", status)
    status = client.sys.submit_unseal_key(reset=True)
    check(status["progress"] == 0, "reset", status)

    step("sys.submit_unseal_keys (base64 shares)")
    status = client.sys.submit_unseal_keys(init["keys_base64"][2:5])
    check(status["sealed"] is False, "unsealed", status)
    check(client.sys.is_sealed() is False, "is_sealed says no")

    step("sys.seal, then unseal again")
    client.sys.seal()
    check(client.sys.is_sealed() is True, "sealed")
    client.sys.submit_unseal_keys(keys[:3])
    check(client.sys.is_sealed() is False, "unsealed")

    step("sys.start_rekey and sys.rekey_multi")
    started = client.sys.start_rekey(secret_shares=4, secret_threshold=2)
    check(started["started"] is True and started["required"] == 3, "a rekey", started)
    progress = client.sys.read_rekey_progress()
    check(progress["nonce"] == started["nonce"], "the same rekey", progress)
    done = client.sys.rekey_multi(keys[1:4], nonce=started["nonce"])
    check(done["complete"] is True and len(done["keys"]) == 4, "four new shares", done)
    new_keys = done["keys"]

    step("the new shares unseal, two of them")
    client.sys.seal()
    status = client.sys.submit_unseal_keys(new_keys[2:4])
    check(status["sealed"] is False and status["t"] == 2, "unsealed with 2", status)

    step("sys.rotate_encryption_key and sys.get_encryption_key_status")
    before = client.sys.get_encryption_key_status()["data"]["term"]
    client.sys.rotate_encryption_key()
    after = client.sys.get_encryption_key_status()["data"]["term"]
    check(after == before + 1, "one term more", (before, after))


def main():
    addr = os.environ.get("VAULT_ADDR")
    if not addr:
        print("test_seal.py: set VAULT_ADDR (a broker not yet initialized)", file=sys.stderr)
        return 2
    print(f"hvac {version('hvac')} against {addr}", flush=True)
    return finish(lambda: run(addr))


if __name__ == "__main__":
    sys.exit(main())
