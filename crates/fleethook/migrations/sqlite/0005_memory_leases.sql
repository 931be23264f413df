-- Leases of a SQLite outbox live in the serving process's memory (`store::memory_leases`):
-- one process serves the file, and a restart released every lease anyway. Written to the
-- row, each lease was an update per delivery that its completion rewrote moments later.
ALTER TABLE deliveries DROP COLUMN lease_until;
