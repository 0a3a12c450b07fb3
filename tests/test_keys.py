"""The key layout has one builder per key, and the write script's mirror of the
company builders (``lua/keys.lua``) names every key exactly as ``server/keys.py`` does."""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis

from server.keys import Keys


async def test_the_script_and_python_build_the_same_keys(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    company = "acme.co-1"
    table = resources.files("server").joinpath("lua/keys.lua").read_text()
    probe = """
    local key = keys_of(KEYS[1])
    return {key.events, key.epoch, key.agents, key.config, key.changes, key.log, key.agent('a-1'),
        key.agent_log('a-1'), key.session('01JD'), key.idle(), key.idle('sales'),
        key.request('r1')}
    """
    from_lua = await redis_client.eval(table + probe, 1, keys.company(company))  # type: ignore[misc]
    from_python = [
        keys.events(company),
        keys.epoch(company),
        keys.agents(company),
        keys.config(company),
        keys.changes(company),
        keys.log(company),
        keys.agent(company, "a-1"),
        keys.agent_log(company, "a-1"),
        keys.session(company, "01JD"),
        keys.idle(company),
        keys.idle(company, "sales"),
        keys.request(company, "r1"),
    ]
    assert from_lua == from_python


def test_a_company_key_leads_back_to_its_company() -> None:
    keys = Keys("p:")
    for name in (keys.events("acme"), keys.agent("acme", "x}:y"), keys.changes("acme")):
        assert keys.company_of(name) == "acme"
    assert keys.company("acme").startswith("p:{acme}")
