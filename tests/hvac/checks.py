"""What both hvac scripts check with: named steps, checks that say what
was expected, and one way to end (the step that failed, and why)."""

import sys
import traceback

from hvac import exceptions


class CheckFailed(Exception):
    pass


_STEP = ["start"]


def step(name):
    _STEP[0] = name
    print(f"-- {name}", flush=True)


def check(cond, what, got=None):
    if not cond:
        raise CheckFailed(f"expected: {what}" + ("" if got is None else f"; got {got!r}"))


def expect(exc_type, what, fn, *args, **kwargs):
    """fn(*args, **kwargs) must raise exc_type (an hvac exception)."""
    try:
        result = fn(*args, **kwargs)
    except exc_type as e:
        return e
    except exceptions.VaultError as e:
        raise CheckFailed(f"{what}: expected {exc_type.__name__}, got {type(e).__name__}: {e}") from e
    raise CheckFailed(f"{what}: expected {exc_type.__name__}, got success: {result!r}")


def in_range(value, low, high):
    return isinstance(value, int) and low <= value <= high


def finish(run):
    """Runs run(); 0 when every check passed, else 1 with the failed step."""
    try:
        run()
    except CheckFailed as e:
        print(f"FAILED in step '{_STEP[0]}': {e}", file=sys.stderr)
        return 1
    except Exception:  # an hvac error where none was expected, above all
        print(f"FAILED in step '{_STEP[0]}' with an unexpected error:", file=sys.stderr)
        traceback.print_exc()
        return 1
    print("ok: every check passed", flush=True)
    return 0
