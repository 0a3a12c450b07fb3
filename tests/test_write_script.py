"""The write script keeps its rules apart: ``lua/rules.lua`` (decide, evolve) is
pure Lua, and ``lua/apply.lua`` is the plumbing that carries out its plans."""

from __future__ import annotations

import json
import re
from importlib import resources

import redis.asyncio as aioredis

from server.store import WRITE_SCRIPT

RULES = resources.files("server").joinpath("lua/rules.lua").read_text()


def test_the_rules_touch_no_redis_keys_or_arguments() -> None:
    assert re.findall(r"\bredis\.|\bKEYS\b|\bARGV\b", RULES) == []
    assert WRITE_SCRIPT.index("rules.lua") < WRITE_SCRIPT.index("apply.lua")


async def test_the_rules_load_alone_and_evolve_a_state(redis_client: aioredis.Redis) -> None:
    probe = """
    local state = { agent = 'a-1', connection = 'offline', activity = 'idle', segments = '',
        status = 'busy', since_status = '500', version = '1-0' }
    local steps = {}
    for _, e in ipairs({ { 'connected', '1000', 's1', 'sales' }, { 'available', '2000' },
            { 'occupying', '3000' }, { 'releasing', '4000' }, { 'available', '5000' } }) do
        rules.evolve(state, e[1], e[2], e[3], e[4])
        steps[#steps + 1] = cjson.encode(state)
    end
    local config = rules.config(false, false, false, false)
    local change = { value = 'break', by_user = true }
    local plan = rules.decide('status', change, state, config, '', false)
    local _, code, message = rules.decide('status', { value = 'nap' }, state, config, '', false)
    return { steps, cjson.encode(plan), code, message }
    """
    steps, plan, code, message = await redis_client.eval(RULES + probe, 0)  # type: ignore[misc]
    states = [json.loads(step) for step in steps]
    connected = {
        "agent": "a-1",
        "version": "1-0",
        "session": "s1",
        "segments": "sales",
        "connection": "online",
        "since_connection": "1000",
        "status": "busy",
        "since_status": "500",
        "activity": "idle",
        "since_activity": "1000",  # none before: set, though the activity stays idle
    }
    assert states[0] == connected  # not routable: no idle_since
    available = connected | {"status": "available", "since_status": "2000", "idle_since": "2000"}
    assert states[1] == available
    occupied = {name: value for name, value in available.items() if name != "idle_since"}
    assert states[2] == occupied | {"activity": "occupying", "since_activity": "3000"}
    released = available | {"since_activity": "4000", "idle_since": "4000"}
    assert states[3] == released
    assert states[4] == released  # the same status again: since_status and idle_since stay
    assert json.loads(plan) == [
        {"kind": "status-changed-user", "value": "break", "session": "s1"},
    ]
    assert (code, message) == ("unknown-status", "nap is not one of the company's statuses")
