-- Operators and checks: a provider may be watched through a check (http or tcp run by a worker,
-- or a ttl renewed over REST) instead of a ZeroMQ heartbeat, so `heartbeat` becomes optional;
-- `health_check` is that check as registered (jsonb; `check` is a reserved word);
-- `deregister_after_ms` removes a provider that stayed down that long (the leader measures it
-- from `state_since`, so a leader restart does not reset the clock); `detail` says what a failed
-- check saw ('HTTP 503', 'ECONNREFUSED', …).
alter table providers alter column heartbeat drop not null;
alter table providers add column health_check jsonb;
alter table providers add column deregister_after_ms integer;
alter table providers add column detail text;
