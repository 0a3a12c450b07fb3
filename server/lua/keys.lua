-- A company's keys, as server/keys.py's company builders name them: the one
-- table every key the write script touches comes from. server/store.py puts
-- this file before apply.lua in one script; tests/test_keys.py checks that
-- the two builders agree.

-- The keys of the company whose prefix (Keys.company) is `base`, e.g.
-- "presence:{acme}:"; built once per company a run touches.
local key_tables = {}
local function keys_of(base)
    local key = key_tables[base]
    if key then return key end
    key = {
        events = base .. 'events',
        epoch = base .. 'epoch',
        agents = base .. 'agents',
        config = base .. 'config',
        changes = base .. 'changes',
        log = base .. 'log',
        agent = function(agent) return base .. 'agent:' .. agent end,
        agent_log = function(agent) return base .. 'agent-log:' .. agent end,
        session = function(session) return base .. 'session:' .. session end,
        idle = function(segment)
            if segment then return base .. 'idle:' .. segment end
            return base .. 'idle'
        end,
        request = function(request_id) return base .. 'request:' .. request_id end,
    }
    key_tables[base] = key
    return key
end
