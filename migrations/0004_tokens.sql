-- API tokens (bearer secrets with scopes). Only the SHA-256 of each secret is stored
-- (`secret_hash`, 64 hex digits): the secret itself is shown once, to whoever created it, and
-- never kept. A revoked token is deleted; an expired one stays until revoked (it is refused at
-- request time). The leader is the only writer, fenced by its epoch like every other write.
create table tokens (
  id text primary key,
  name text not null,
  scopes jsonb not null,
  secret_hash text not null unique check (secret_hash ~ '^[0-9a-f]{64}$'),
  created_at timestamptz not null default now(),
  expires_at timestamptz null
);
