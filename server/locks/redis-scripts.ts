/**
 * The Lua scripts of RedisLockTable. Each runs atomically on the shard of one document: every
 * key it touches carries the document's hash tag. A script announces each change itself
 * (PUBLISH inside the script), so every instance hears the changes of a resource in the order
 * they happened; each announcement carries a per-resource sequence number, so an instance that
 * already delivered a change (its own, from the script's reply) drops the echo.
 *
 * Redis may lose its data (a restart without persistence): the sequence numbers then start
 * again, and the instances, which remember the last one they delivered per resource, would drop
 * every change until the new numbers passed the old ones (a grant never announced is never
 * renewed by its holder's instance, and its lease runs out while the client still holds it).
 * So each document's counters carry an epoch, Redis's clock when they were first written: an
 * announcement of a later epoch starts the count again.
 *
 * KEYS: 1 holders (hash resource → {lock, node, ttl}), 2 queue of the resource (list of waiter
 * JSON {id, node, owner, ttl}), 3 fence (hash `t:`resource → last token, `s:`resource →
 * sequence, `epoch` → when these counters started; the prefixes keep a resource named `s:x`
 * apart from the sequence of `x`), 4 reservations (hash resource → waiter being handed the
 * lock, with `until`).
 * ARGV: 1 resource, 2 channel, 3 now (ms), 4 document name, then per script.
 * Every script returns one JSON object: { status, lock?, holder?, next?, node?, events }.
 */

/** How long a popped waiter stays reserved while its grant is fetching a token. */
export const RESERVE_MS = 5_000

const PRELUDE = `
local holders, queue, fence, reserve = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local resource, channel, now, doc = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local events = {}

-- microseconds of Redis's clock as a string (cjson would round so large a number)
local function epoch ()
  local value = redis.call('HGET', fence, 'epoch')
  if value then return value end
  local time = redis.call('TIME')
  value = time[1] .. string.format('%06d', tonumber(time[2]))
  redis.call('HSET', fence, 'epoch', value)
  return value
end

local function announce (event, lock, reason, node, waiter)
  local seq = redis.call('HINCRBY', fence, 's:' .. resource, 1)
  local payload = cjson.encode({ doc = doc, event = event, lock = lock, reason = reason or '', node = node, waiter = waiter or '', seq = seq, epoch = epoch() })
  redis.call('PUBLISH', channel, payload)
  table.insert(events, payload)
end

local function holder ()
  local raw = redis.call('HGET', holders, resource)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function free (record, reason)
  redis.call('HDEL', holders, resource)
  announce('released', record.lock, reason, record.node)
end

-- a lease that ran out is released before anything else looks at the lock
local function current ()
  local record = holder()
  if record and record.lock.expiresAt <= now then
    free(record, 'expired')
    return nil
  end
  return record
end

local function reserved ()
  local raw = redis.call('HGET', reserve, resource)
  if not raw then return nil end
  local waiter = cjson.decode(raw)
  if waiter['until'] <= now then
    redis.call('HDEL', reserve, resource)
    return nil
  end
  return waiter
end

-- a free lock with waiters: the first is popped and reserved; the caller fetches its token
local function advance ()
  if redis.call('HEXISTS', holders, resource) == 1 or reserved() then return nil end
  local raw = redis.call('LPOP', queue)
  if not raw then return nil end
  local waiter = cjson.decode(raw)
  waiter['until'] = now + ${RESERVE_MS}
  local encoded = cjson.encode(waiter)
  redis.call('HSET', reserve, resource, encoded)
  return encoded
end

local function lastToken ()
  return tonumber(redis.call('HGET', fence, 't:' .. resource) or '0')
end

local function grant (owner, ttl, token, node, waiter)
  local lock = { resource = resource, token = token, sessionId = owner.sessionId, userId = owner.userId,
    name = owner.name, color = owner.color, acquiredAt = now, expiresAt = now + ttl }
  redis.call('HSET', fence, 't:' .. resource, token)
  redis.call('HSET', holders, resource, cjson.encode({ lock = lock, node = node, ttl = ttl }))
  announce('acquired', lock, nil, node, waiter)
  return lock
end

local function reply (result)
  result.events = events
  return cjson.encode(result)
end
`

/**
 * ARGV 5 owner JSON, 6 node, 7 ttl, 8 token (fetched from the store), 9 waiter JSON or ''.
 * status: renewed (the holder asked again) | granted | stale (token not above the last one:
 * fetch another) | queued | held.
 */
export const ACQUIRE = PRELUDE + `
local owner, node, ttl, token, waiter = cjson.decode(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local record = current()
if record and record.lock.sessionId == owner.sessionId then
  record.lock.expiresAt = now + ttl
  record.ttl = ttl
  redis.call('HSET', holders, resource, cjson.encode(record))
  return reply({ status = 'renewed', lock = record.lock })
end
local next = nil
if not record then next = advance() end
if not record and not reserved() and redis.call('LLEN', queue) == 0 then
  if token <= lastToken() then return reply({ status = 'stale' }) end
  return reply({ status = 'granted', lock = grant(owner, ttl, token, node, nil) })
end
local status = 'held'
if waiter ~= '' then
  redis.call('RPUSH', queue, waiter)
  status = 'queued'
end
return reply({ status = status, holder = record and record.lock or nil, next = next })
`

/**
 * ARGV 5 mode (session | node | any | expire | none), 6 value to match, 7 reason.
 * Releases the lock if its holder matches, then reserves the next waiter.
 * status: released | renewed (expire mode, the lease was extended) | none.
 */
export const RELEASE = PRELUDE + `
local mode, value, reason = ARGV[5], ARGV[6], ARGV[7]
local record = holder()
local status = 'none'
local released = nil
if record then
  local lock = record.lock
  if mode == 'any' or (mode == 'session' and lock.sessionId == value) or (mode == 'node' and record.node == value) or
      (mode == 'expire' and lock.expiresAt <= now) then
    free(record, reason)
    released = record
    status = 'released'
  elseif mode == 'expire' and lock.sessionId == value then
    status = 'renewed'
  end
end
local result = { status = status, next = advance() }
if released then
  result.lock = released.lock
  result.node = released.node
elseif record then
  result.lock = record.lock
end
return reply(result)
`

/**
 * ARGV 5 waiter id, 6 token. Grants the lock to the reserved waiter.
 * status: granted | stale (fetch another token) | lost (the reservation is gone).
 */
export const GRANT = PRELUDE + `
local id, token = ARGV[5], tonumber(ARGV[6])
local waiter = reserved()
if not waiter or waiter.id ~= id or redis.call('HEXISTS', holders, resource) == 1 then return reply({ status = 'lost' }) end
if token <= lastToken() then return reply({ status = 'stale' }) end
redis.call('HDEL', reserve, resource)
return reply({ status = 'granted', lock = grant(waiter.owner, waiter.ttl, token, waiter.node, waiter.id), node = waiter.node })
`

/**
 * ARGV 5 waiter JSON (exactly as queued). Takes a waiter out of the queue, or out of its
 * reservation (then the next one is reserved).
 * status: cancelled | granted (too late: it holds the lock now, see `lock`) | none.
 */
export const CANCEL = PRELUDE + `
local raw = ARGV[5]
local waiter = cjson.decode(raw)
-- advance: a reservation left by an instance that died while handing over is cleared here
if redis.call('LREM', queue, 1, raw) > 0 then return reply({ status = 'cancelled', next = advance() }) end
local r = reserved()
if r and r.id == waiter.id then
  redis.call('HDEL', reserve, resource)
  return reply({ status = 'cancelled', next = advance() })
end
local record = holder()
if record and record.lock.sessionId == waiter.owner.sessionId then return reply({ status = 'granted', lock = record.lock }) end
return reply({ status = 'none' })
`

/**
 * ARGV 5 session id, 6 ttl. Extends the lease of the holder.
 * status: renewed | none (it does not hold the lock any more).
 */
export const RENEW = PRELUDE + `
local session, ttl = ARGV[5], tonumber(ARGV[6])
local record = current()
if not record or record.lock.sessionId ~= session then
  if not record then advance() end
  return reply({ status = 'none' })
end
record.lock.expiresAt = now + ttl
record.ttl = ttl
redis.call('HSET', holders, resource, cjson.encode(record))
return reply({ status = 'renewed', lock = record.lock })
`

/**
 * ARGV 5 lock JSON, 6 node, 7 ttl. After Redis came back without its data: puts back a lock
 * this instance's session held, if nobody took the resource meanwhile.
 * status: renewed (it is still there) | restored | lost (announced as released, `expired`).
 */
export const RESTORE = PRELUDE + `
local lock, node, ttl = cjson.decode(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local record = current()
if record and record.lock.sessionId == lock.sessionId and record.lock.token == lock.token then return reply({ status = 'renewed', lock = record.lock }) end
if record or reserved() or lastToken() >= lock.token then
  announce('released', lock, 'expired', node)
  return reply({ status = 'lost' })
end
lock.expiresAt = now + ttl
redis.call('HSET', fence, 't:' .. resource, lock.token)
redis.call('HSET', holders, resource, cjson.encode({ lock = lock, node = node, ttl = ttl }))
return reply({ status = 'restored', lock = lock })
`

/**
 * ARGV 5 session id, 6 node. The session resumed on this node: every lock it holds in the
 * document (the resource argument is unused) names this node from now on, with its lease
 * starting again now; same lock, same token, nothing announced (nothing changed for clients).
 * Bounded by the document's locks. status: adopted, with `adopted` [{ lock, ttl, from }].
 */
export const ADOPT = PRELUDE + `
local session, node = ARGV[5], ARGV[6]
local adopted = {}
local all = redis.call('HGETALL', holders)
for i = 1, #all, 2 do
  local record = cjson.decode(all[i + 1])
  if record.lock.sessionId == session and record.lock.expiresAt > now then
    local from = record.node
    record.node = node
    record.lock.expiresAt = now + record.ttl
    redis.call('HSET', holders, all[i], cjson.encode(record))
    table.insert(adopted, { lock = record.lock, ttl = record.ttl, from = from })
  end
end
return reply({ status = 'adopted', adopted = adopted })
`

/**
 * KEYS 1 the sorted set of live instances. ARGV 1 this instance, 2 how old a score may get (ms).
 * Scores are Redis's own clock, so instances with skewed clocks do not reap each other.
 * Refreshes this instance's score; returns the instances whose score is older than allowed.
 */
export const BEAT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
`
