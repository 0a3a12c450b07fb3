-- Apply one change to one agent, atomically: load the stored state, ask the
-- rules (rules.lua: decide, evolve) what the change does, then carry out their
-- plan: append the events to the company's stream, update the agent's state,
-- the routable indexes and the session keys, publish the result. This file is
-- the plumbing only: what a change is allowed to do, and the state each event
-- leaves, is rules.lua's (stated again in Python by server/reference_model.py).
--
-- One run applies a batch of changes, each on its own (a refusal refuses that
-- change only): the store coalesces the changes that arrive while a run is in
-- flight, of any companies that share a Redis Cluster slot (on one node: of
-- every company), so one round trip serves many consoles and many tenants.
--
-- KEYS[i] - the key prefix of change i's company, e.g. "presence:{acme}:". Every
--           key a change touches is built from it by keys.lua's keys_of (the
--           mirror of server/keys.py's company builders), so all of them share
--           the "{acme}" hash tag and the slot KEYS[i] routes to.
-- ARGV    - 8 values per change, in the order of KEYS:
--   op         - hello | disconnect | status | activity | acd | claim
--   agent      - agent id ("" for claim: the script picks one)
--   now        - integer milliseconds since the epoch, as a decimal string
--   conn       - the connection asking ("" when not a console: ACD, supervisor, server)
--   args       - JSON arguments of the op:
--                hello:      {session?, new_session, segments[], status?, lost_conn?, restored?,
--                             check_holder?, expect_holder?}
--                            (restored: the instance puts back a session it holds after
--                            Redis lost its data; its status is then the system's doing)
--                disconnect: {reason, end_session, session_ttl}
--                status:     {value, by_user}
--                activity:   {value}      acd: {value, reason?}
--                claim:      {segment?, exclude[]}
--   instance   - the instance applying it (pub/sub listeners skip their own changes)
--   request_id - a retried request (the reply was lost to a network blip or a
--                Redis restart) gets its first result again, applied once
--   request_ttl - seconds the first result is kept for that: as long as the
--                writer may still send (or have in flight) a retry
-- Returns one JSON map per change, in order:
-- {ok = true, agent, changes = [{event, state}], session, resumed, origin
-- (conn), instance, ended_conn (the connection whose hold on the session this
-- change ended)} or {error = code, message = text}.
-- Publishes, once per run and company, the changes that appended anything on
-- the company's log channel (key.log): a JSON list of {follows, result}, where
-- `follows` is the id of the entry before the change's first. A follower whose
-- cursor is that id has missed nothing; any other reads the gap from the
-- stream. And each change on key.changes, when another instance must act on it.

-- The agent's hash fields (`conn`: the connection holding the session).
local FIELDS = { 'agent', 'session', 'connection', 'status', 'activity', 'segments',
    'since_connection', 'since_status', 'since_activity', 'idle_since', 'version', 'conn' }
-- The fields of the state that a stream entry carries after its event's own.
local STATE_FIELDS = { 'connection', 'status', 'activity', 'segments', 'since_connection',
    'since_status', 'since_activity', 'idle_since' }
-- What a claim does to the agent it picks.
local OCCUPY = { value = 'occupying' }
local NONE = {}

local function refuse(code, message)
    return cjson.encode({ error = code, message = message })
end

local function split(csv)
    local list = {}
    for item in string.gmatch(csv, '[^,]+') do list[#list + 1] = item end
    return list
end

local function load_state(agent_key, agent)
    local values = redis.call('HMGET', agent_key, unpack(FIELDS))
    local state = {}
    for i, name in ipairs(FIELDS) do
        if values[i] then state[name] = values[i] end
    end
    state.agent = agent
    state.connection = state.connection or 'offline'
    state.activity = state.activity or 'idle'
    state.segments = state.segments or ''
    return state
end

-- The wire shape of the state (spec §2), as server/store.py reads it.
local function snapshot(state)
    local copy = {}
    for _, name in ipairs(FIELDS) do
        if name ~= 'conn' then copy[name] = state[name] end
    end
    return copy
end

-- The id of each company's log's last entry (by its events key): read once
-- per run, then kept as entries are appended, so that each published change
-- says what it follows.
local last_ids = {}
-- Each company's log channel and what to publish on it at the end of the run.
local published = {}
local function log_position(key)
    local last_id = last_ids[key.events]
    if last_id == nil then
        local last = redis.call('XREVRANGE', key.events, '+', '-', 'COUNT', 1)
        last_id = last[1] and last[1][1] or '0-0'
        last_ids[key.events] = last_id
    end
    return last_id
end

-- One event of the plan: the state after it (rules.evolve), then the event is
-- appended and kept in `changes`.
local function emit(key, state, agent, now, changes, planned)
    local value, session, segments = planned.value, planned.session, planned.segments
    rules.evolve(state, value, now, session, segments)

    -- The entry: the event, then the agent's state after it, so that any range
    -- of the log can be served with states without replaying what came before.
    local fields = { 'ts', now, 'agent', agent, 'session', session or '', 'type', planned.kind,
        'value', value, 'reason', planned.reason or '' }
    for _, name in ipairs(STATE_FIELDS) do
        fields[#fields + 1] = name
        fields[#fields + 1] = state[name] or ''
    end
    local id = redis.call('XADD', key.events, '*', unpack(fields))
    -- The agent's own index: the same ids, so one agent's day is one XRANGE.
    -- An index ahead of the log outlived a lost log: it starts again with it.
    local index_key = key.agent_log(agent)
    if redis.pcall('XADD', index_key, id, 'value', value).err then
        redis.call('DEL', index_key)
        redis.call('XADD', index_key, id, 'value', value)
    end
    state.version = id
    last_ids[key.events] = id

    local event = { id = id, ts = now, agent = agent, session = session or '', type = planned.kind,
        value = value, reason = planned.reason or '' }
    if segments then event.segments = segments end
    changes[#changes + 1] = { event = event, state = snapshot(state) }
end

-- Whether connection `c` lives on another instance than the one named `mine`.
local function elsewhere(c, mine)
    return c ~= nil and c ~= '' and string.sub(c, 1, #mine) ~= mine
end

local function apply(key, op, agent, now, conn, args_json, instance, request_id, request_ttl)
    local request_key = key.request(request_id)
    local earlier = redis.call('GET', request_key)
    if earlier then
        -- A write, so that a WAIT after this run also covers the first attempt's
        -- writes (durability replicated): the replication stream is in order.
        redis.call('EXPIRE', request_key, request_ttl)
        return earlier
    end
    local args = cjson.decode(args_json)

    -- Company settings; rules.config fills in server/state.py's CompanyConfig defaults.
    local cfg = redis.call('HMGET', key.config, 'acd_mode', 'statuses', 'initial_status',
        'timeout_status')
    local config = rules.config(cfg[1], cfg[2] and cjson.decode(cfg[2]), cfg[3], cfg[4])

    -- claim: the routable agent idle the longest (ties by agent id: the sorted set
    -- orders equal scores by member), skipping `exclude`, then occupy it.
    if op == 'claim' then
        local code, message = rules.claim(config)
        if code then return refuse(code, message) end
        local exclude = args.exclude or NONE
        local excluded = {}
        for _, name in ipairs(exclude) do excluded[name] = true end
        agent = nil
        for _, candidate in ipairs(redis.call('ZRANGE', key.idle(args.segment), 0, #exclude)) do
            if not excluded[candidate] then
                agent = candidate
                break
            end
        end
        if agent == nil then return refuse('no-agent-available', 'no routable agent to claim') end
        op, args = 'acd', OCCUPY
    end

    local agent_key = key.agent(agent)
    local state = load_state(agent_key, agent)
    local segments_before = state.segments

    -- A new or lost stream starts a new epoch: cursors into the old one are void.
    -- (A reader that made the stream first, e.g. XGROUP CREATE … MKSTREAM, leaves
    -- no epoch behind: that counts as new too.)
    if redis.call('EXISTS', key.events) == 0 or redis.call('EXISTS', key.epoch) == 0 then
        local t = redis.call('TIME')
        redis.call('SET', key.epoch, t[1] .. string.format('%06d', tonumber(t[2])))
    end

    -- The one fact the rules need from beyond the agent's hash: whether the
    -- session a hello asks to resume still names this agent (not expired).
    local resumable = false
    if op == 'hello' and args.session and args.session == state.session then
        resumable = redis.call('HGET', key.session(args.session), 'agent') == agent
    end
    local plan, code, message = rules.decide(op, args, state, config, conn, resumable)
    if not plan then return refuse(code, message) end

    local result = { ok = true }
    if plan.ended_conn ~= nil then result.ended_conn = plan.ended_conn end
    if plan.resumed ~= nil then
        result.session = plan.session
        result.resumed = plan.resumed
    end

    local changes = {}
    local follows = #plan > 0 and log_position(key)
    for i = 1, #plan do emit(key, state, agent, now, changes, plan[i]) end

    if plan.delete then redis.call('DEL', key.session(plan.delete)) end
    if plan.persist then redis.call('PERSIST', key.session(plan.session)) end
    if plan.expire then redis.call('EXPIRE', key.session(plan.expire), plan.ttl) end
    if plan.create then
        redis.call('HSET', key.session(plan.session), 'agent', agent)
        redis.call('SADD', key.agents, agent)
    end
    if plan.hold == 'take' then
        state.conn = conn
    elseif plan.hold == 'drop' then
        state.conn = nil
    end

    -- Persist the state and keep the routable indexes (all agents, and per segment)
    -- scored by idle_since, so the ACD finds the longest idle agent in O(log n).
    local stored = {}
    for _, name in ipairs(FIELDS) do
        if state[name] then
            stored[#stored + 1] = name
            stored[#stored + 1] = state[name]
        end
    end
    redis.call('DEL', agent_key)
    redis.call('HSET', agent_key, unpack(stored))

    for _, segment in ipairs(split(segments_before)) do redis.call('ZREM', key.idle(segment), agent) end
    if rules.routable(state) then
        redis.call('ZADD', key.idle(), state.idle_since, agent)
        for _, segment in ipairs(split(state.segments)) do
            redis.call('ZADD', key.idle(segment), state.idle_since, agent)
        end
    else
        redis.call('ZREM', key.idle(), agent)
        for _, segment in ipairs(split(state.segments)) do redis.call('ZREM', key.idle(segment), agent) end
    end

    result.changes = changes
    result.agent = agent
    result.origin = conn
    result.instance = instance
    local encoded = cjson.encode(result)
    -- Published only when a connection it concerns (the holder now, or the one
    -- whose hold this ended) lives on another instance: the instance applying
    -- a change acts on its own connections itself, and at thousands of changes
    -- a second every instance decoding every change would cost them all.
    local mine = instance .. '/'
    if #changes > 0 and (elsewhere(state.conn, mine) or elsewhere(result.ended_conn, mine)) then
        redis.call('SPUBLISH', key.changes, encoded)
    end
    if #changes > 0 then
        local logged = published[key.log]
        if logged == nil then
            logged = {}
            published[key.log] = logged
        end
        logged[#logged + 1] = '{"follows":"' .. follows .. '","result":' .. encoded .. '}'
    end
    redis.call('SET', request_key, encoded, 'EX', request_ttl)
    return encoded
end

-- A change that fails (a bug, or Redis refusing a write: OOM) fails alone; the
-- others in the batch still apply.
local results = {}
for n, base in ipairs(KEYS) do
    local i = (n - 1) * 8 + 1
    local ok, result = pcall(apply, keys_of(base), ARGV[i], ARGV[i + 1], ARGV[i + 2],
        ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
    if not ok then
        local message = type(result) == 'table' and result.err or tostring(result)
        -- A replica (a master demoted by a failover) refuses every write: the
        -- whole run fails as Redis said, and the client retries it on the
        -- master, rather than each change reading `internal`.
        if string.find(message, 'READONLY', 1, true) then return redis.error_reply(message) end
        result = cjson.encode({ error = 'internal', message = message })
    end
    results[#results + 1] = result
end
-- One message per company a run changed: at thousands of changes a second,
-- each message costs every follower more than its contents do.
for channel, logged in pairs(published) do
    redis.call('SPUBLISH', channel, '[' .. table.concat(logged, ',') .. ']')
end
return results
