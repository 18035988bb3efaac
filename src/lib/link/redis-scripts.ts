/**
 * The Lua scripts a redis link runs: each is one atomic step on the server,
 * so nothing another node does comes between its parts.
 */

/** Compares two stream ids in Lua (ms and seq fit a double exactly). */
const LESS = `
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function less(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  if am ~= bm then return am < bm end
  return as < bs
end
`

/**
 * Appends a publish's messages (a form's parts: nothing comes between them)
 * if the stream is still the one this node knows: its epoch key holds the
 * epoch this node read. A stream that was lost (a Redis restarted without
 * persistence) has no epoch, or a new one: the append is refused
 * (`MSGBUSEPOCH`) until this node has seen the loss, told its subscribers,
 * and made sure new ids follow the ones it has (`CHECK`).
 *
 * KEYS: stream, epoch key. ARGV: epoch, max length, message count, then for
 * each message its field count and fields.
 */
export const APPEND = `
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return redis.error_reply('MSGBUSEPOCH the stream is not the one this node follows')
end
local ids = {}
local at = 4
for m = 1, tonumber(ARGV[3]) do
  local count = tonumber(ARGV[at])
  local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*'}
  for j = 1, count do args[6 + j] = ARGV[at + j] end
  at = at + count + 1
  ids[m] = redis.call(unpack(args))
end
return ids
`

/**
 * What a node checks when it opens, and again whenever its follow loop sees
 * the stream is not the one it knew: the epoch (set now, to ARGV[1], when
 * there is none: a new stream, or one that was lost), and the stream's last
 * generated id and newest deleted id as they were before this call. When the
 * last generated id is below ARGV[2], the newest id this node has, new
 * entries would sort before messages clients already hold: the stream's
 * last id is set to it (XSETID; for an empty or missing stream, marked as
 * deleted too, so that a node opening later puts its horizon there).
 *
 * KEYS: stream, epoch key. ARGV: new epoch, newest id known.
 * Returns {epoch, last-generated-id, max-deleted-entry-id} as they were,
 * and the max-deleted-entry-id as it is now.
 */
export const CHECK =
  LESS +
  `
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
local last, deleted, length = '0-0', '0-0', 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
    if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
end
if less(last, ARGV[2]) then
  if length == 0 then
    if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('XADD', KEYS[1], 'MAXLEN', '0', ARGV[2], 'x', '') end
    redis.call('XSETID', KEYS[1], ARGV[2], 'MAXDELETEDID', ARGV[2])
    return {epoch, last, deleted, ARGV[2]}
  else
    redis.call('XSETID', KEYS[1], ARGV[2])
  end
end
return {epoch, last, deleted, deleted}
`

/**
 * What the follow loop reads before each XREAD, in the same pipeline: the
 * epoch, the stream's last generated id, its oldest entry's id, how many
 * entries it has ever taken and how many it holds; short strings rather
 * than XINFO's whole reply (which carries the first and last entries,
 * bodies and all) on every round. Trimming (MAXLEN) does not move Redis's
 * max-deleted-entry-id, so entries trimmed before a node read them are
 * told by these counts (redis-link.ts, trimmedPast).
 *
 * KEYS: stream, epoch key. Returns {epoch or '', last-generated-id,
 * recorded-first-entry-id, entries-added, length}.
 */
export const STATE = `
local epoch = redis.call('GET', KEYS[2]) or ''
local last, first, added, length = '0-0', '0-0', 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    local name = info[i]
    if name == 'last-generated-id' then last = info[i + 1]
    elseif name == 'recorded-first-entry-id' then first = info[i + 1]
    elseif name == 'entries-added' then added = info[i + 1]
    elseif name == 'length' then length = info[i + 1] end
  end
end
return {epoch, last, first, tostring(added), tostring(length)}
`
