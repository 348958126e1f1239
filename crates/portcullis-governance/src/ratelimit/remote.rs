//! Buckets in Redis, shared by every replica. One Lua script does a whole check
//! (or debit) atomically, with Redis's own clock (`TIME`), so replicas with skewed
//! clocks still agree. Each bucket is a hash `{l: level, t: ms, c: limit}` whose TTL is the
//! time it takes to fill up again: an idle bucket expires, which equals a full one.
//! A bucket that was never written is full. Not for Redis Cluster: a key's and its
//! group's buckets would live in different slots.

use super::{LimitError, Slot, Subject, Verdict};
use crate::shared::Shared;
use std::time::Duration;

/// A request waits at most this long for Redis before it is refused (fail closed).
const TIMEOUT: Duration = Duration::from_millis(1_000);

/// KEYS: the buckets. ARGV[1]: `check` or `debit`; ARGV[2]: tokens to debit;
/// ARGV[2 + i]: the limit of KEYS[i], positive for a request bucket, negative for
/// a token bucket. Returns {allowed, wait ms, level of each bucket x 1000}.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mode = ARGV[1]
local amount = tonumber(ARGV[2])
local levels, wait = {}, 0
for i, key in ipairs(KEYS) do
  local cap = math.abs(tonumber(ARGV[2 + i]))
  local state = redis.call('HMGET', key, 'l', 't', 'c')
  local level, at, was = tonumber(state[1]), tonumber(state[2]), tonumber(state[3])
  if level == nil or at == nil then
    level = cap
  else
    -- A raised limit grants its extra room at once (bucket.rs does the same).
    if was ~= nil and cap > was then level = level + cap - was end
    if now > at then level = level + (now - at) * cap / 60000 end
  end
  if level > cap then level = cap end
  levels[i] = level
  if level < 1 then
    local w = math.ceil((1 - level) * 60000 / cap)
    if w > wait then wait = w end
  end
end
local allowed = 1
if mode == 'check' and wait > 0 then allowed = 0 end
local out = {allowed, wait}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + i])
  local cap = math.abs(limit)
  local level = levels[i]
  local write = false
  if mode == 'debit' then
    level = level - amount
    write = true
  elseif allowed == 1 and limit > 0 then
    level = level - 1
    write = true
  end
  if write then
    redis.call('HSET', key, 'l', tostring(level), 't', now, 'c', cap)
    redis.call('PEXPIRE', key, math.ceil((cap - level) * 60000 / cap) + 1000)
  end
  out[#out + 1] = math.floor(level * 1000)
end
return out
";

pub struct RedisLimiter {
    shared: Shared,
    script: redis::Script,
}

/// One call of the script, owned so a debit can run in its own task.
struct Call {
    mode: &'static str,
    amount: u64,
    keys: Vec<String>,
    limits: Vec<i64>,
}

impl Call {
    async fn run(
        self,
        script: &redis::Script,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<Vec<i64>, LimitError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(self.mode).arg(self.amount);
        for (key, limit) in self.keys.iter().zip(&self.limits) {
            invocation.key(key).arg(*limit);
        }
        tokio::time::timeout(TIMEOUT, invocation.invoke_async(conn))
            .await
            .map_err(|_| LimitError::Unavailable("no answer within 1 s".into()))?
            .map_err(|e| LimitError::Unavailable(e.to_string()))
    }
}

impl RedisLimiter {
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            script: redis::Script::new(SCRIPT),
        }
    }

    fn call(&self, subject: &Subject<'_>, slots: &[Slot], mode: &'static str, amount: u64) -> Call {
        let caps = subject.caps();
        let mut call = Call {
            mode,
            amount,
            keys: Vec::with_capacity(slots.len()),
            limits: Vec::with_capacity(slots.len()),
        };
        for &slot in slots {
            if let Some(cap) = caps[slot.index()] {
                let scope = if slot.is_group() { "g" } else { "k" };
                let (kind, limit) = match slot.is_requests() {
                    true => ("r", cap as i64),
                    false => ("t", -(cap as i64)),
                };
                call.keys
                    .push(self.shared.key(&["rl", scope, subject.id(slot), kind]));
                call.limits.push(limit);
            }
        }
        call
    }

    pub async fn check(&self, subject: &Subject<'_>) -> Result<Verdict, LimitError> {
        let caps = subject.caps();
        let mut conn = self.shared.conn.clone();
        let reply = self
            .call(subject, &Slot::ALL, "check", 0)
            .run(&self.script, &mut conn)
            .await?;
        let (allowed, wait) = match reply.as_slice() {
            [allowed, wait, ..] => (*allowed == 1, u64::try_from(*wait).unwrap_or(0)),
            _ => return Err(LimitError::Unavailable("unexpected script reply".into())),
        };
        let mut levels = [0.0; 4];
        let mut values = reply.iter().skip(2);
        for slot in Slot::ALL {
            if caps[slot.index()].is_some() {
                let milli = values.next().copied().unwrap_or(0);
                levels[slot.index()] = milli as f64 / 1000.0;
            }
        }
        Ok(Verdict::new(&caps, &levels, allowed, wait))
    }

    /// Sends the debit from a task; the caller does not wait for Redis.
    pub fn settle(&self, subject: &Subject<'_>, tokens: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let call = self.call(subject, &TOKEN_SLOTS, "debit", tokens);
        let (script, mut conn) = (self.script.clone(), self.shared.conn.clone());
        runtime.spawn(async move {
            if let Err(e) = call.run(&script, &mut conn).await {
                tracing::warn!(error = %e, tokens, "could not debit rate-limit tokens");
            }
        });
    }

    /// Debits and waits for Redis to confirm.
    pub async fn settle_now(&self, subject: &Subject<'_>, tokens: u64) -> Result<(), LimitError> {
        let mut conn = self.shared.conn.clone();
        self.call(subject, &TOKEN_SLOTS, "debit", tokens)
            .run(&self.script, &mut conn)
            .await
            .map(drop)
    }
}

const TOKEN_SLOTS: [Slot; 2] = [Slot::KeyTokens, Slot::GroupTokens];
