"""One scalable unit for every timeout in the tests.

``PRESENCE_TEST_TIMEOUT_SCALE=3`` triples them on a slow machine; nothing else
needs to change, and no test sleeps to synchronise.
"""

import os

SCALE = float(os.environ.get("PRESENCE_TEST_TIMEOUT_SCALE", "1"))


def seconds(value: float) -> float:
    """``value`` seconds, scaled for this machine."""
    return value * SCALE
