-- Roster's database as it is after every migration in migrations/ (0001, 0002, 0003, 0004).
-- Generated from a freshly migrated database's catalog by test/docs/architecture.test.ts, which
-- fails when this file and the migrations disagree; regenerate it with ROSTER_WRITE_SCHEMA=1 (see
-- that test). It is documentation, never run: migrate() applies only migrations/*.sql, and a
-- change to the schema is a new numbered migration. What the tables and columns mean:
-- ARCHITECTURE.md › The data. Definitions are in Postgres's own words (pg_get_constraintdef,
-- pg_get_indexdef); schema_migrations is the migrator's own record (server/store/migrate.ts).

create table changes (
  revision bigint not null,
  event text not null,
  provider_id text not null,
  service text not null,
  provider jsonb not null,
  created_at timestamp with time zone not null default now(),
  constraint changes_pkey PRIMARY KEY (revision),
  constraint changes_event_check CHECK ((event = ANY (ARRAY['registered'::text, 'updated'::text, 'up'::text, 'down'::text, 'maintenance'::text, 'deregistered'::text])))
);

create table providers (
  id text not null,
  service text not null,
  host text not null,
  port integer not null,
  protocol text not null,
  heartbeat text,
  heartbeat_interval_ms integer not null,
  tags jsonb not null default '[]'::jsonb,
  meta jsonb not null default '{}'::jsonb,
  state text not null,
  state_since timestamp with time zone not null,
  last_seen timestamp with time zone,
  revision bigint not null,
  reason text,
  detected_after_ms integer,
  health_check jsonb,
  deregister_after_ms integer,
  detail text,
  constraint providers_pkey PRIMARY KEY (id),
  constraint providers_protocol_check CHECK ((protocol = ANY (ARRAY['http'::text, 'rpc'::text, 'pub'::text]))),
  constraint providers_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'up'::text, 'down'::text, 'maintenance'::text])))
);
CREATE INDEX providers_service_idx ON public.providers USING btree (service);

create table roster_meta (
  id integer not null,
  revision bigint not null default 0,
  epoch bigint not null default 0,
  pruned_through bigint not null default 0,
  constraint roster_meta_pkey PRIMARY KEY (id),
  constraint roster_meta_id_check CHECK ((id = 1))
);

create table schema_migrations (
  id text not null,
  applied_at timestamp with time zone not null default now(),
  constraint schema_migrations_pkey PRIMARY KEY (id)
);

create table tokens (
  id text not null,
  name text not null,
  scopes jsonb not null,
  secret_hash text not null,
  created_at timestamp with time zone not null default now(),
  expires_at timestamp with time zone,
  constraint tokens_pkey PRIMARY KEY (id),
  constraint tokens_secret_hash_key UNIQUE (secret_hash),
  constraint tokens_secret_hash_check CHECK ((secret_hash ~ '^[0-9a-f]{64}$'::text))
);
