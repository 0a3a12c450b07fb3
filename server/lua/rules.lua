-- The rules of the agent state machine (spec §3), as the write script applies
-- them: which change is allowed, which events it causes (decide), and the state
-- after each event (evolve). server/reference_model.py states the same rules in
-- Python under the same names; tests/test_transitions.py runs one table of
-- cases through both. A rule changes here and in the model, never in apply.lua.
--
-- Pure: no Redis call and none of the script's keys or arguments (checked by
-- tests/test_write_script.py). What the rules need from Redis, apply.lua reads
-- first and passes in; decide returns a plan, and apply.lua carries it out.
-- A state is the agent's hash as a table (apply.lua's FIELDS, plus `conn`: the
-- connection holding the session); evolve changes it in place.
local rules = {}

local SC, USER, ACD = 'status-changed', 'status-changed-user', 'acd'
local ACTIVITY_AFTER = {
    occupying = 'occupying', releasing = 'idle', timeout = 'idle', ['in-call'] = 'in-call',
    ['end-call'] = 'idle', dismiss = 'idle', meeting = 'meeting', ['meeting-end'] = 'idle',
}
local CONNECTION_AFTER = { connected = 'online', reconnected = 'online', disconnected = 'offline' }
-- server/state.py's CompanyConfig defaults.
local DEFAULT_STATUSES = { 'busy', 'break', 'bath', 'meal', 'gathering', 'training' }
-- The plan of a change that is allowed and changes nothing (read only).
local NOTHING = {}

-- The company's settings the rules read, from the stored config hash's values
-- (nil or false where unset; `statuses` decoded: [{value, ...}]).
function rules.config(acd_mode, statuses, initial_status, timeout_status)
    local allowed = { available = true }
    if statuses then
        for _, status in ipairs(statuses) do allowed[status.value] = true end
    else
        for _, value in ipairs(DEFAULT_STATUSES) do allowed[value] = true end
    end
    if timeout_status == '' then timeout_status = nil end
    return { acd_mode = acd_mode or 'circular', allowed = allowed,
        initial_status = initial_status or 'busy', timeout_status = timeout_status }
end

function rules.routable(state)
    return state.connection == 'online' and state.status == 'available' and state.activity == 'idle'
end

local function online(state) return state.connection == 'online' end

-- `name` becomes `new`; its since_* moves to `now` when it changed (or never had one).
local function set(state, name, since, new, now)
    if state[name] ~= new or state[since] == nil then state[since] = now end
    state[name] = new
end

-- evolve(): the state after the event setting `value` at `now` (session: the
-- event's, taken on `connected`; segments: a connection event's, if any).
function rules.evolve(state, value, now, session, segments)
    local was_routable = rules.routable(state)
    local connection = CONNECTION_AFTER[value]
    if connection then
        set(state, 'connection', 'since_connection', connection, now)
        if value == 'connected' then
            state.session = session
            set(state, 'activity', 'since_activity', 'idle', now)
        end
        if segments then state.segments = segments end
    elseif ACTIVITY_AFTER[value] then
        set(state, 'activity', 'since_activity', ACTIVITY_AFTER[value], now)
    else
        set(state, 'status', 'since_status', value, now)
    end
    if not rules.routable(state) then
        state.idle_since = nil
    elseif not was_routable then
        state.idle_since = now
    end
end

-- One event of a plan, in the order emitted.
local function event(kind, value, reason, session, segments)
    return { kind = kind, value = value, reason = reason, session = session, segments = segments }
end

local function invalid(value, why) return nil, 'invalid-transition', value .. ': ' .. why end

local function unknown_status(value)
    return nil, 'unknown-status', value .. ' is not one of the company\'s statuses'
end

-- Why the connection holding the session lets go of it: replaced, unless its
-- instance is known to be dead, and then it was lost with it.
local function replaced_reason(args, state, reason)
    if args.lost_conn and args.lost_conn == state.conn then return 'server-lost' end
    return reason
end

local function hello(args, state, config, resumable)
    -- The caller chose between "lost" and "replaced" looking at one holder; if
    -- another connection took the session since, that choice is void: retry.
    if args.check_holder and (state.conn or '') ~= args.expect_holder then
        return nil, 'stale-connection', 'the session changed hands meanwhile'
    end
    if args.status and not config.allowed[args.status] then return unknown_status(args.status) end
    local segments = table.concat(args.segments, ',')
    local plan = { resumed = resumable, hold = 'take' }
    if online(state) then
        plan.ended_conn = state.conn
        plan[1] = event(SC, 'disconnected',
            replaced_reason(args, state, resumable and 'connection-replaced' or 'session-replaced'),
            state.session)
    end
    if resumable then
        plan[#plan + 1] = event(SC, 'reconnected', nil, state.session, segments)
        plan.session, plan.persist = state.session, true
    else
        plan.delete = state.session
        local session = args.new_session
        plan[#plan + 1] = event(SC, 'connected', nil, session, segments)
        local initial, kind = config.initial_status, SC
        if args.status then
            -- restored: the instance puts back a session it holds after Redis
            -- lost its data; its status is then the system's doing.
            initial, kind = args.status, args.restored and SC or USER
        end
        if initial ~= state.status then plan[#plan + 1] = event(kind, initial, nil, session) end
        plan.session, plan.create = session, true
    end
    return plan
end

local function activity(state, value)
    local now_doing = state.activity
    if value == 'in-call' then
        if not (online(state) and (now_doing == 'idle' or now_doing == 'occupying')) then
            return invalid(value, 'the agent must be online and idle or occupied')
        end
    elseif value == 'end-call' then
        if now_doing ~= 'in-call' then return invalid(value, 'the agent is not in a call') end
    elseif value == 'dismiss' then
        if not online(state) then return invalid(value, 'the agent is not online') end
    elseif value == 'meeting' then
        if not (online(state) and now_doing == 'idle') then
            return invalid(value, 'the agent must be online and idle')
        end
    elseif value == 'meeting-end' then
        if now_doing ~= 'meeting' then return invalid(value, 'the agent is not in a meeting') end
    else
        return nil, 'bad-request', value .. ' is not an activity'
    end
    return { event(SC, value, nil, state.session) }
end

local function acd(state, value, reason, config)
    if (value == 'occupying' or value == 'releasing') and config.acd_mode ~= 'circular' then
        return nil, 'acd-mode', value .. ' needs acd_mode circular'
    end
    if value == 'occupying' then
        if not rules.routable(state) then return invalid(value, 'the agent is not routable') end
        return { event(ACD, value, nil, state.session) }
    elseif value == 'releasing' then
        if state.activity ~= 'occupying' then return invalid(value, 'the agent is not occupied') end
        return { event(ACD, value, reason, state.session) }
    elseif value == 'timeout' then
        if not (online(state) or state.activity == 'occupying') then
            return invalid(value, 'the agent is neither online nor occupied')
        end
        local plan = { event(ACD, value, nil, state.session) }
        local timeout_status = config.timeout_status
        if timeout_status and timeout_status ~= state.status then
            plan[2] = event(SC, timeout_status, nil, state.session)
        end
        return plan
    end
    return nil, 'bad-request', value .. ' is not an ACD action'
end

-- A claim's precondition, before apply.lua picks the agent (then: acd occupying).
-- Returns nil, or the refusal's code and message.
function rules.claim(config)
    if config.acd_mode ~= 'circular' then return 'acd-mode', 'claims need acd_mode circular' end
end

-- decide(): what the change `op` with `args` (see apply.lua's header) does to an
-- agent in `state`, asked by connection `conn` ('' when not a console), with
-- the company's `config` (rules.config) and `resumable`: whether args.session
-- is this agent's session and its key still names it (hello only).
--
-- Returns nil, code, message: refused, nothing applied. Else the plan:
--   plan[1..n]  - the events to emit, in order: {kind, value, reason?, session?, segments?}
--   ended_conn  - the connection whose hold on the session this change ended
--   hold        - 'take': `conn` now holds the session; 'drop': no one does
--   session, resumed - hello's session and whether it was resumed
--   persist     - hello resumed: plan.session's key no longer expires
--   create      - hello started plan.session: its key names the agent
--   delete      - the session whose key goes (replaced, or ended for good)
--   expire, ttl - the session whose key expires in ttl seconds (resumable meanwhile)
function rules.decide(op, args, state, config, conn, resumable)
    if op == 'hello' then return hello(args, state, config, resumable) end
    if state.version == nil then return nil, 'not-found', 'this agent has never connected' end
    -- A console may only act for the session it holds: after a replacement the old
    -- socket lingers until it is closed, and must not record anything.
    if conn ~= '' and state.conn ~= conn then
        return nil, 'stale-connection', 'this connection no longer holds the session'
    end
    local value = args.value or args.reason
    if op == 'disconnect' then
        if not online(state) then return invalid(value, 'the agent is not online') end
        local plan = { event(SC, 'disconnected', args.reason, state.session),
            ended_conn = state.conn, hold = 'drop' }
        if args.end_session then
            plan.delete = state.session
        else
            plan.expire, plan.ttl = state.session, args.session_ttl
        end
        return plan
    elseif op == 'status' then
        if not config.allowed[value] then return unknown_status(value) end
        if args.by_user and not online(state) then return invalid(value, 'the agent is not online') end
        if value == state.status then return NOTHING end
        return { event(args.by_user and USER or SC, value, nil, state.session) }
    elseif op == 'activity' then
        return activity(state, value)
    elseif op == 'acd' then
        return acd(state, value, args.reason, config)
    end
    return nil, 'bad-request', 'unknown op ' .. op
end
