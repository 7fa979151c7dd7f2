-- The registry: current providers, the change log that the feed replays, and one row of
-- counters. The leader is the only writer; every write is one transaction that touches all
-- three (ARCHITECTURE.md › Invariants). Runs inside migrate()'s transaction: no BEGIN/COMMIT here.

-- One row per registered provider; its last change is at `revision`.
create table providers (
  id text primary key,
  service text not null,
  host text not null,
  port int not null,
  protocol text not null check (protocol in ('http', 'rpc', 'pub')),
  heartbeat text not null,
  heartbeat_interval_ms int not null,
  tags jsonb not null default '[]',
  meta jsonb not null default '{}',
  state text not null check (state in ('pending', 'up', 'down', 'maintenance')),
  state_since timestamptz not null,
  last_seen timestamptz null,
  revision bigint not null
);
create index providers_service_idx on providers (service);

-- Every change, keyed by its revision; `provider` is the provider as it was after the change
-- (for 'deregistered', as it was when removed). Pruned from the oldest end.
create table changes (
  revision bigint primary key,
  event text not null check (event in ('registered', 'updated', 'up', 'down', 'maintenance', 'deregistered')),
  provider_id text not null,
  service text not null,
  provider jsonb not null,
  created_at timestamptz not null default now()
);

-- revision: the latest committed revision. epoch: the current leader term (fencing token).
-- pruned_through: the highest revision deleted from `changes`, so history after it is complete.
create table roster_meta (
  id int primary key check (id = 1),
  revision bigint not null default 0,
  epoch bigint not null default 0,
  pruned_through bigint not null default 0
);
insert into roster_meta (id) values (1);
