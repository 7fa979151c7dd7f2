-- Why a provider is in its state and how stale the evidence was: `reason` (disconnected, silent,
-- flapping, check-failed, or an operator's maintenance note) and, on down, `detected_after_ms`,
-- the time from its last heartbeat to the decision.
alter table providers add column reason text;
alter table providers add column detected_after_ms integer;
