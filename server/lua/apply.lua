-- Apply one change to one agent, atomically: check the precondition against the
-- stored state, append the events to the company's stream, update the agent's
-- state and the routable indexes, publish the events. This is what runs; its
-- rules are stated again in Python by server/reference_model.py (decide/evolve),
-- and tests/test_transitions.py runs one table of cases through both.
--
-- One run applies a batch of changes of one company, each on its own (a
-- refusal refuses that change only): the store coalesces the changes that
-- arrive while a run is in flight, so one round trip serves many consoles.
--
-- KEYS[1] - the company's key prefix, e.g. "presence:{acme}:". Every key this
--           script touches is built from it by the `key` table of keys.lua (the
--           mirror of server/keys.py's company builders), so all of them share
--           the "{acme}" hash tag and the slot KEYS[1] routes to.
-- ARGV    - 7 values per change:
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
-- Returns one JSON map per change, in order, published when anything changed
-- that another instance must act on:
-- {ok = true, agent, changes = [{event, state}], session, resumed, origin
-- (conn), instance, ended_conn (the connection whose hold on the session this
-- change ended)} or {error = code, message = text}.

local function apply(op, agent, now, conn, args_json, instance, request_id)
    local request_key = key.request(request_id)
    local earlier = redis.call('GET', request_key)
    if earlier then return earlier end
    local args = cjson.decode(args_json)

    -- Company settings; the defaults are server/state.py's CompanyConfig.
    local cfg = redis.call('HMGET', key.config, 'acd_mode', 'statuses', 'initial_status',
        'timeout_status')
    local acd_mode = cfg[1] or 'circular'
    local allowed = { available = true }
    if cfg[2] then
        for _, status in ipairs(cjson.decode(cfg[2])) do allowed[status.value] = true end
    else
        for _, value in ipairs({ 'busy', 'break', 'bath', 'meal', 'gathering', 'training' }) do
            allowed[value] = true
        end
    end
    local initial_status = cfg[3] or 'busy'
    local timeout_status = cfg[4]
    if timeout_status == '' then timeout_status = nil end

    local function refuse(code, message)
        return cjson.encode({ error = code, message = message })
    end

    -- claim: the routable agent idle the longest (ties by agent id: the sorted set
    -- orders equal scores by member), skipping `exclude`, then occupy it.
    if op == 'claim' then
        if acd_mode ~= 'circular' then return refuse('acd-mode', 'claims need acd_mode circular') end
        local idle_key = key.idle(args.segment)
        local excluded = {}
        for _, name in ipairs(args.exclude or {}) do excluded[name] = true end
        agent = nil
        for _, candidate in ipairs(redis.call('ZRANGE', idle_key, 0, #(args.exclude or {}))) do
            if not excluded[candidate] then
                agent = candidate
                break
            end
        end
        if agent == nil then return refuse('no-agent-available', 'no routable agent to claim') end
        op, args = 'acd', { value = 'occupying' }
    end

    local agent_key = key.agent(agent)

    local FIELDS = { 'agent', 'session', 'connection', 'status', 'activity', 'segments',
        'since_connection', 'since_status', 'since_activity', 'idle_since', 'version', 'conn' }

    local function load_state()
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

    local state = load_state()
    local segments_before = state.segments

    local function routable(s)
        return s.connection == 'online' and s.status == 'available' and s.activity == 'idle'
    end

    local ACTIVITY_AFTER = {
        occupying = 'occupying', releasing = 'idle', timeout = 'idle', ['in-call'] = 'in-call',
        ['end-call'] = 'idle', dismiss = 'idle', meeting = 'meeting', ['meeting-end'] = 'idle',
    }
    local CONNECTION_AFTER = { connected = 'online', reconnected = 'online', disconnected = 'offline' }

    local changes = {}

    -- A new or lost stream starts a new epoch: cursors into the old one are void.
    -- (A reader that made the stream first, e.g. XGROUP CREATE … MKSTREAM, leaves
    -- no epoch behind: that counts as new too.)
    if redis.call('EXISTS', key.events) == 0 or redis.call('EXISTS', key.epoch) == 0 then
        local t = redis.call('TIME')
        redis.call('SET', key.epoch, t[1] .. string.format('%06d', tonumber(t[2])))
    end

    local function split(csv)
        local list = {}
        for item in string.gmatch(csv, '[^,]+') do list[#list + 1] = item end
        return list
    end

    -- The wire shape of the state (spec §2), as server/store.py reads it.
    local function snapshot()
        local copy = {}
        for _, name in ipairs(FIELDS) do
            if name ~= 'conn' then copy[name] = state[name] end
        end
        return copy
    end

    -- evolve(): the state after one event; then the event is appended and kept.
    -- The fields of the state that a stream entry carries after its event's own.
    local STATE_FIELDS = { 'connection', 'status', 'activity', 'segments', 'since_connection',
        'since_status', 'since_activity', 'idle_since' }

    local function emit(kind, value, reason, session, segments)
        local was_routable = routable(state)
        local function set(name, new)
            if state[name] ~= new or state['since_' .. name] == nil then
                state['since_' .. name] = now
            end
            state[name] = new
        end
        if CONNECTION_AFTER[value] then
            set('connection', CONNECTION_AFTER[value])
            if value == 'connected' then
                state.session = session
                set('activity', 'idle')
            end
            if segments then state.segments = segments end
        elseif ACTIVITY_AFTER[value] then
            set('activity', ACTIVITY_AFTER[value])
        else
            set('status', value)
        end
        if not routable(state) then
            state.idle_since = nil
        elseif not was_routable then
            state.idle_since = now
        end

        -- The entry: the event, then the agent's state after it, so that any range
        -- of the log can be served with states without replaying what came before.
        local fields = { 'ts', now, 'agent', agent, 'session', session or '', 'type', kind,
            'value', value, 'reason', reason or '' }
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

        local event = { id = id, ts = now, agent = agent, session = session or '', type = kind,
            value = value, reason = reason or '' }
        if segments then event.segments = segments end
        changes[#changes + 1] = { event = event, state = snapshot() }
    end

    local function online() return state.connection == 'online' end

    -- A console may only act for the session it holds: after a replacement the old
    -- socket lingers until it is closed, and must not record anything.
    local function stale()
        return conn ~= '' and state.conn ~= conn
    end

    local result = { ok = true }

    -- Why the connection holding the session lets go of it: replaced, unless its
    -- instance is known to be dead, and then it was lost with it.
    local function replaced_reason(reason)
        if args.lost_conn and args.lost_conn == state.conn then return 'server-lost' end
        return reason
    end

    if op == 'hello' then
        -- The caller chose between "lost" and "replaced" looking at one holder; if
        -- another connection took the session since, that choice is void: retry.
        if args.check_holder and (state.conn or '') ~= args.expect_holder then
            return refuse('stale-connection', 'the session changed hands meanwhile')
        end
        if args.status and not allowed[args.status] then
            return refuse('unknown-status', args.status .. ' is not one of the company\'s statuses')
        end
        local resumable = false
        if args.session and args.session == state.session then
            resumable = redis.call('HGET', key.session(args.session), 'agent') == agent
        end
        local segments = table.concat(args.segments, ',')
        if resumable then
            if online() then
                result.ended_conn = state.conn
                emit('status-changed', 'disconnected', replaced_reason('connection-replaced'),
                    state.session)
            end
            emit('status-changed', 'reconnected', nil, state.session, segments)
            redis.call('PERSIST', key.session(state.session))
        else
            if online() then
                result.ended_conn = state.conn
                emit('status-changed', 'disconnected', replaced_reason('session-replaced'),
                    state.session)
            end
            if state.session then redis.call('DEL', key.session(state.session)) end
            local session = args.new_session
            emit('status-changed', 'connected', nil, session, segments)
            local initial, kind = initial_status, 'status-changed'
            if args.status then
                initial, kind = args.status, args.restored and 'status-changed' or 'status-changed-user'
            end
            if initial ~= state.status then emit(kind, initial, nil, session) end
            redis.call('HSET', key.session(session), 'agent', agent)
            redis.call('SADD', key.agents, agent)
        end
        result.session = state.session
        result.resumed = resumable
        state.conn = conn
    else
        if state.version == nil then
            return refuse('not-found', 'this agent has never connected')
        end
        if stale() then return refuse('stale-connection', 'this connection no longer holds the session') end
        local value = args.value or args.reason
        local function invalid(why) return refuse('invalid-transition', value .. ': ' .. why) end

        if op == 'disconnect' then
            if not online() then return invalid('the agent is not online') end
            result.ended_conn = state.conn
            emit('status-changed', 'disconnected', args.reason, state.session)
            local session_key = key.session(state.session)
            if args.end_session then
                redis.call('DEL', session_key)
            else
                redis.call('EXPIRE', session_key, args.session_ttl)
            end
            state.conn = nil
        elseif op == 'status' then
            if not allowed[value] then
                return refuse('unknown-status', value .. ' is not one of the company\'s statuses')
            end
            if args.by_user and not online() then return invalid('the agent is not online') end
            if value ~= state.status then
                emit(args.by_user and 'status-changed-user' or 'status-changed', value, nil, state.session)
            end
        elseif op == 'activity' then
            local activity = state.activity
            if value == 'in-call' then
                if not (online() and (activity == 'idle' or activity == 'occupying')) then
                    return invalid('the agent must be online and idle or occupied')
                end
            elseif value == 'end-call' then
                if activity ~= 'in-call' then return invalid('the agent is not in a call') end
            elseif value == 'dismiss' then
                if not online() then return invalid('the agent is not online') end
            elseif value == 'meeting' then
                if not (online() and activity == 'idle') then
                    return invalid('the agent must be online and idle')
                end
            elseif value == 'meeting-end' then
                if activity ~= 'meeting' then return invalid('the agent is not in a meeting') end
            else
                return refuse('bad-request', value .. ' is not an activity')
            end
            emit('status-changed', value, nil, state.session)
        elseif op == 'acd' then
            if (value == 'occupying' or value == 'releasing') and acd_mode ~= 'circular' then
                return refuse('acd-mode', value .. ' needs acd_mode circular')
            end
            if value == 'occupying' then
                if not routable(state) then return invalid('the agent is not routable') end
                emit('acd', value, nil, state.session)
            elseif value == 'releasing' then
                if state.activity ~= 'occupying' then return invalid('the agent is not occupied') end
                emit('acd', value, args.reason, state.session)
            elseif value == 'timeout' then
                if not (online() or state.activity == 'occupying') then
                    return invalid('the agent is neither online nor occupied')
                end
                emit('acd', value, nil, state.session)
                if timeout_status and timeout_status ~= state.status then
                    emit('status-changed', timeout_status, nil, state.session)
                end
            else
                return refuse('bad-request', value .. ' is not an ACD action')
            end
        else
            return refuse('bad-request', 'unknown op ' .. op)
        end
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
    if routable(state) then
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
    local function elsewhere(c) return c ~= nil and c ~= '' and string.sub(c, 1, #mine) ~= mine end
    if #changes > 0 and (elsewhere(state.conn) or elsewhere(result.ended_conn)) then
        redis.call('PUBLISH', key.changes, encoded)
    end
    -- Long enough for any retry of this request; short enough to cost little.
    redis.call('SET', request_key, encoded, 'EX', 120)
    return encoded
end

-- A change that fails (a bug, or Redis refusing a write: OOM) fails alone; the
-- others in the batch still apply.
local results = {}
for i = 1, #ARGV, 7 do
    local ok, result = pcall(apply, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
        ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
    if not ok then
        local message = type(result) == 'table' and result.err or tostring(result)
        result = cjson.encode({ error = 'internal', message = message })
    end
    results[#results + 1] = result
end
return results
