/**
 * The lease protocol as Redis Lua scripts: each runs atomically on the
 * server and reads the server's clock (TIME; Redis 7 replicates script
 * effects, so replicas see the writes, not the clock). Their semantics are
 * MemoryStore's (store/memory.ts), line for line; the protocol tests run
 * against both.
 *
 * Every script gets KEYS[1] = `{prefix}:epoch` and builds the other key
 * names from ARGV[1] = `{prefix}`: the braces are a hash tag, so a fleet's
 * keys share one Redis Cluster slot and a script may touch all of them.
 * ARGV[2] is the request as JSON; the reply is JSON.
 *
 * Keys (P = `{prefix}`):
 *   P:epoch         hash  id, at — the fleet's epoch: created when missing (a new or emptied store)
 *   P:ctr           hash  av, hv — assignment and health versions, polled by every process
 *   P:a:<account>   hash  proxy (fleet key), ver, state (ready|moving), bu (barrier until), reason,
 *                         sid, smint (on a gateway slot: the account's session and when it was minted)
 *   P:h:<account>   hash  instance → "expiry:ack" — the account's lease holders
 *   P:hp:<account>  hash  instance → JSON list of the fleet keys of that holder's pool
 *   P:p:<key>       hash  owner, until, url (redacted), down, err, probe, pu
 *   P:accounts, P:proxies  sets, for listing
 *   P:i             hash  instance → JSON { instance, host, pid, fp, started, seen }
 *   P:s:<account>   hash  "<key>|req|fail|sent|recv" → counters
 *   channel P:events     move / ready / health messages (best effort)
 */

const HELPERS = `
local P = ARGV[1]
local req = cjson.decode(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(v) return tonumber(v) or 0 end
local function str(v) if v and v ~= '' then return v end return nil end
local function akey(a) return P .. ':a:' .. a end
local function hkey(a) return P .. ':h:' .. a end
local function hpkey(a) return P .. ':hp:' .. a end
local function pkey(k) return P .. ':p:' .. k end
local function fmt(n) return string.format('%d', n) end
-- The server's run id changes on every restart and differs on a promoted replica: a store that
-- may have lost writes. Then the settle clock restarts (no new acquisition or move for TTL + margin),
-- while the leases it still has keep renewing.
-- The replication id too: a new one on every promotion, so a server promoted again with data it
-- held as a primary earlier (never restarted, so the same run id) counts as a new server as well.
local run = (string.match(redis.call('INFO', 'server'), 'run_id:(%w+)') or '') .. ':' .. (string.match(redis.call('INFO', 'replication'), 'master_replid:(%w+)') or '')
local function epochFor(newId)
  local f = redis.call('HMGET', KEYS[1], 'id', 'at', 'run')
  if not f[1] then
    redis.call('HSET', KEYS[1], 'id', newId, 'at', fmt(now), 'run', run)
    return newId, now
  end
  if f[3] ~= run then
    redis.call('HSET', KEYS[1], 'at', fmt(now), 'run', run)
    return f[1], now
  end
  return f[1], num(f[2])
end
local function getAccount(name)
  local f = redis.call('HMGET', akey(name), 'proxy', 'ver', 'state', 'bu', 'reason', 'sid', 'smint')
  local session = nil
  if str(f[6]) then session = { id = f[6], minted = num(f[7]) } end
  return { proxy = str(f[1]), ver = num(f[2]), state = str(f[3]) or 'ready', bu = num(f[4]), reason = str(f[5]), session = session }
end
local function saveAccount(name, a)
  local sid, smint = '', '0'
  if a.session then sid, smint = a.session.id, fmt(a.session.minted) end
  redis.call('HSET', akey(name), 'proxy', a.proxy, 'ver', fmt(a.ver), 'state', a.state, 'bu', fmt(a.bu), 'reason', a.reason or '', 'sid', sid, 'smint', smint)
  redis.call('SADD', P .. ':accounts', name)
end
local function holders(name)
  local raw = redis.call('HGETALL', hkey(name))
  local hs, n = {}, 0
  for i = 1, #raw, 2 do
    local e, k = string.match(raw[i + 1], '^(%d+):(%d+)$')
    e = tonumber(e)
    if e and e > now then
      hs[raw[i]] = { e = e, k = tonumber(k) }
      n = n + 1
    else
      redis.call('HDEL', hkey(name), raw[i])
      redis.call('HDEL', hpkey(name), raw[i])
    end
  end
  return hs, n
end
local function setHolder(name, id, e, k)
  redis.call('HSET', hkey(name), id, fmt(e) .. ':' .. fmt(k))
end
local function getProxy(k)
  local f = redis.call('HMGET', pkey(k), 'owner', 'until', 'down')
  return { owner = str(f[1]), untl = num(f[2]), down = num(f[3]) }
end
-- A gateway session (c.session) has no owner record: its id is the account's own.
local function pick(order, account, exclusive, margin)
  for _, c in ipairs(order) do
    local p = getProxy(c.key)
    if p.down <= now then
      if (not exclusive) or c.session or (not p.owner) or p.owner == account or now >= p.untl + margin then return c end
    end
  end
  return nil
end
local function claim(c, account, exclusive, untl)
  redis.call('HSET', pkey(c.key), 'url', c.url)
  redis.call('SADD', P .. ':proxies', c.key)
  if (not exclusive) or c.session then return end
  local p = getProxy(c.key)
  local u = p.untl
  if p.owner ~= account then u = 0 end
  redis.call('HSET', pkey(c.key), 'owner', account, 'until', fmt(math.max(u, untl)))
end
local function extend(a, account, exclusive, untl)
  if (not a.proxy) or a.session then return end
  local p = getProxy(a.proxy)
  if (not exclusive) or p.owner == account then redis.call('HSET', pkey(a.proxy), 'until', fmt(math.max(p.untl, untl))) end
end
local function publish(m) redis.call('PUBLISH', P .. ':events', cjson.encode(m)) end
local function settle(name, a, hs)
  if a.state ~= 'moving' then return end
  if now < a.bu then
    for _, h in pairs(hs) do if h.k < a.ver then return end end
  end
  a.state = 'ready'
  redis.call('HSET', akey(name), 'state', 'ready')
  publish({ t = 'ready', a = name, v = a.ver })
end
local function assignment(name, a, status, id)
  return { status = status, epoch = id, now = now, account = name, proxy = a.proxy, ver = a.ver, state = a.state, reason = a.reason, session = a.session }
end
local function reply(status, id, extra)
  local r = extra or {}
  r.status = status
  r.epoch = id
  r.now = now
  return cjson.encode(r)
end
`;

const ACQUIRE = `
local id, at = epochFor(req.newEpoch)
local settleMs = at + req.ttl + req.margin - now
if settleMs > 0 then return reply('settling', id, { retryIn = settleMs }) end
local a = getAccount(req.account)
local hs, n = holders(req.account)
local keys, inK = {}, {}
for i, c in ipairs(req.candidates) do keys[i] = c.key; inK[c.key] = c end
if a.proxy and n > 0 and not hs[req.instance] and not inK[a.proxy] then return reply('mismatch', id, { proxy = a.proxy }) end
if (not a.proxy) or n == 0 then
  local order = {}
  if a.proxy and inK[a.proxy] then
    local sticky = inK[a.proxy]
    table.insert(order, { key = sticky.key, url = sticky.url, session = a.session or sticky.session })
  end
  for _, c in ipairs(req.candidates) do if c.key ~= a.proxy then table.insert(order, c) end end
  local chosen = pick(order, req.account, req.exclusive, req.margin)
  if not chosen then return reply('none', id) end
  if chosen.key ~= a.proxy then
    a.proxy = chosen.key
    a.ver = a.ver + 1
    a.reason = 'acquire'
    redis.call('HINCRBY', P .. ':ctr', 'av', 1)
  end
  a.session = chosen.session
  a.state = 'ready'
  claim(chosen, req.account, req.exclusive, now + req.ttl)
  saveAccount(req.account, a)
end
extend(a, req.account, req.exclusive, now + req.ttl)
local ack = a.ver
if hs[req.instance] then ack = hs[req.instance].k end
setHolder(req.account, req.instance, now + req.ttl, ack)
redis.call('HSET', hpkey(req.account), req.instance, cjson.encode(keys))
return cjson.encode(assignment(req.account, a, 'ok', id))
`;

const RENEW = `
local id, at = epochFor(req.newEpoch)
if id ~= req.epoch then return reply('epoch', id, { retryIn = math.max(0, at + req.ttl + req.margin - now) }) end
local info = redis.call('HGET', P .. ':i', req.instance)
if info then
  local i = cjson.decode(info)
  i.seen = now
  redis.call('HSET', P .. ':i', req.instance, cjson.encode(i))
end
local out = {}
for _, x in ipairs(req.accounts) do
  local a = getAccount(x.account)
  local hs = holders(x.account)
  local h = hs[req.instance]
  if (not a.proxy) or (not h) then
    table.insert(out, { account = x.account, held = false })
  else
    local k = h.k
    if x.ack > k then k = math.min(x.ack, a.ver) end
    hs[req.instance] = { e = now + req.ttl, k = k }
    setHolder(x.account, req.instance, now + req.ttl, k)
    extend(a, x.account, req.exclusive, now + req.ttl)
    settle(x.account, a, hs)
    table.insert(out, { account = x.account, held = true, proxy = a.proxy, ver = a.ver, state = a.state, reason = a.reason, session = a.session })
  end
end
return reply('ok', id, { accounts = out })
`;

const MOVE = `
local id, at = epochFor(req.newEpoch)
if id ~= req.epoch then return reply('epoch', id, { retryIn = math.max(0, at + req.ttl + req.margin - now) }) end
local settleMs = at + req.ttl + req.margin - now
if settleMs > 0 then return reply('settling', id, { retryIn = settleMs }) end
local a = getAccount(req.account)
local hs, n = holders(req.account)
local h = hs[req.instance]
if (not a.proxy) or (not h) then return reply('lost', id) end
if a.ver ~= req.fromVer then return cjson.encode(assignment(req.account, a, 'stale', id)) end
local pools = {}
local raw = redis.call('HGETALL', hpkey(req.account))
for i = 1, #raw, 2 do
  if hs[raw[i]] then
    local set = {}
    for _, k in ipairs(cjson.decode(raw[i + 1])) do set[k] = true end
    table.insert(pools, set)
  end
end
local order = {}
for _, c in ipairs(req.candidates) do
  -- The current proxy only with another session (a new session on the same gateway).
  local sid = nil
  if a.session then sid = a.session.id end
  if c.key ~= a.proxy or (c.session and c.session.id ~= sid) then
    local ok = true
    for _, s in ipairs(pools) do if not s[c.key] then ok = false; break end end
    if ok then table.insert(order, c) end
  end
end
local chosen = pick(order, req.account, req.exclusive, req.margin)
if not chosen then return reply('none', id) end
extend(a, req.account, req.exclusive, now + req.ttl)
claim(chosen, req.account, req.exclusive, now + req.ttl)
a.proxy = chosen.key
a.session = chosen.session
a.ver = a.ver + 1
a.reason = req.reason
a.bu = now + req.ttl
if n > 1 then a.state = 'moving' else a.state = 'ready' end
saveAccount(req.account, a)
setHolder(req.account, req.instance, now + req.ttl, a.ver)
redis.call('HINCRBY', P .. ':ctr', 'av', 1)
publish({ t = 'move', a = req.account, v = a.ver })
return cjson.encode(assignment(req.account, a, 'ok', id))
`;

const RELEASE = `
local a = getAccount(req.account)
if redis.call('HDEL', hkey(req.account), req.instance) == 0 then return '{}' end
redis.call('HDEL', hpkey(req.account), req.instance)
local hs = holders(req.account)
extend(a, req.account, req.exclusive, now + req.ttl)
settle(req.account, a, hs)
return '{}'
`;

const HELLO = `
local id = epochFor(req.newEpoch)
local info = req.info
info.seen = now
redis.call('HSET', P .. ':i', info.instance, cjson.encode(info))
local raw = redis.call('HGETALL', P .. ':i')
local others = {}
for i = 1, #raw, 2 do
  local x = cjson.decode(raw[i + 1])
  if num(x.seen) < now - 3 * req.ttl then redis.call('HDEL', P .. ':i', raw[i])
  elseif raw[i] ~= info.instance then table.insert(others, x) end
end
return reply('ok', id, { others = others })
`;

const DOWN = `
local p = getProxy(req.key)
redis.call('HSET', pkey(req.key), 'down', fmt(math.max(p.down, now + req.ms)), 'err', req.error or '')
redis.call('SADD', P .. ':proxies', req.key)
redis.call('HINCRBY', P .. ':ctr', 'hv', 1)
publish({ t = 'health', k = req.key })
return '{}'
`;

const UP = `
redis.call('HSET', pkey(req.key), 'down', '0', 'err', '')
redis.call('HDEL', pkey(req.key), 'probe', 'pu')
redis.call('HINCRBY', P .. ':ctr', 'hv', 1)
publish({ t = 'health', k = req.key })
return '{}'
`;

const CLAIM_PROBE = `
local f = redis.call('HMGET', pkey(req.key), 'probe', 'pu')
if f[1] and f[1] ~= req.instance and num(f[2]) > now then return '{"ok":false}' end
redis.call('HSET', pkey(req.key), 'probe', req.instance, 'pu', fmt(now + req.lease))
return '{"ok":true}'
`;

const HEALTH = `
local out = {}
for _, k in ipairs(req.keys) do
  local f = redis.call('HMGET', pkey(k), 'down', 'err', 'probe', 'pu')
  if f[1] or f[3] then
    local probe = nil
    if num(f[4]) > now then probe = str(f[3]) end
    out[k] = { down = num(f[1]), error = str(f[2]), probe = probe }
  end
end
return cjson.encode({ now = now, proxies = out })
`;

const POLL = `
local e = redis.call('HGET', KEYS[1], 'id') or ''
local c = redis.call('HMGET', P .. ':ctr', 'av', 'hv')
return cjson.encode({ epoch = e, av = num(c[1]), hv = num(c[2]), now = now })
`;

const STATS = `
for _, r in ipairs(req.rows) do
  local s = P .. ':s:' .. r.account
  if r.requests ~= 0 then redis.call('HINCRBY', s, r.key .. '|req', fmt(r.requests)) end
  if r.failures ~= 0 then redis.call('HINCRBY', s, r.key .. '|fail', fmt(r.failures)) end
  if r.bytesSent ~= 0 then redis.call('HINCRBY', s, r.key .. '|sent', fmt(r.bytesSent)) end
  if r.bytesReceived ~= 0 then redis.call('HINCRBY', s, r.key .. '|recv', fmt(r.bytesReceived)) end
  redis.call('HSET', pkey(r.key), 'url', r.url)
  redis.call('SADD', P .. ':proxies', r.key)
  redis.call('SADD', P .. ':statAccounts', r.account)
end
return '{}'
`;

const SNAPSHOT = `
local e = redis.call('HGET', KEYS[1], 'id') or ''
local accounts = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. ':accounts')) do
  local a = getAccount(name)
  if a.proxy then
    local hl = {}
    local raw = redis.call('HGETALL', hkey(name))
    for i = 1, #raw, 2 do
      local ex, k = string.match(raw[i + 1], '^(%d+):(%d+)$')
      if tonumber(ex) and tonumber(ex) > now then table.insert(hl, { instance = raw[i], expiry = tonumber(ex), ack = tonumber(k) }) end
    end
    table.insert(accounts, { account = name, proxy = a.proxy, ver = a.ver, state = a.state, reason = a.reason, session = a.session, barrierUntil = a.bu, holders = hl })
  end
end
local proxies = {}
for _, k in ipairs(redis.call('SMEMBERS', P .. ':proxies')) do
  local f = redis.call('HMGET', pkey(k), 'url', 'owner', 'until', 'down', 'err')
  table.insert(proxies, { key = k, url = str(f[1]), owner = str(f[2]), ['until'] = num(f[3]), down = num(f[4]), error = str(f[5]) })
end
local instances = {}
local raw = redis.call('HGETALL', P .. ':i')
for i = 1, #raw, 2 do table.insert(instances, cjson.decode(raw[i + 1])) end
local stats = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. ':statAccounts')) do
  local raw2 = redis.call('HGETALL', P .. ':s:' .. name)
  local rows = {}
  for i = 1, #raw2, 2 do
    local k, what = string.match(raw2[i], '^(.*)|(%a+)$')
    if k then
      rows[k] = rows[k] or { account = name, key = k, requests = 0, failures = 0, bytesSent = 0, bytesReceived = 0 }
      local field = ({ req = 'requests', fail = 'failures', sent = 'bytesSent', recv = 'bytesReceived' })[what]
      if field then rows[k][field] = tonumber(raw2[i + 1]) end
    end
  end
  for k, r in pairs(rows) do
    r.url = str(redis.call('HGET', pkey(k), 'url')) or ''
    table.insert(stats, r)
  end
end
return cjson.encode({ now = now, epoch = e, accounts = accounts, proxies = proxies, instances = instances, stats = stats })
`;

export const SCRIPTS = {
  acquire: HELPERS + ACQUIRE,
  renew: HELPERS + RENEW,
  move: HELPERS + MOVE,
  release: HELPERS + RELEASE,
  hello: HELPERS + HELLO,
  down: HELPERS + DOWN,
  up: HELPERS + UP,
  claimProbe: HELPERS + CLAIM_PROBE,
  health: HELPERS + HEALTH,
  poll: HELPERS + POLL,
  stats: HELPERS + STATS,
  snapshot: HELPERS + SNAPSHOT,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
