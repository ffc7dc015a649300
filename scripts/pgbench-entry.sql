-- pgbench script: one durable write of the size sluicegate's postgres backend
-- stores per added entry (one list row and one entry row, upserted in one
-- transaction), on the schema `sluicegate` that `sluicegate serve` creates at start.
--   pgbench -n -f scripts/pgbench-entry.sql -c 16 -j 2 -T 10 DBNAME
\set l random(1, 1000)
\set id random(1, 99999999)
BEGIN;
INSERT INTO sluicegate.lists (name, next_id) VALUES ('list-' || :l, :id + 1)
    ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id;
INSERT INTO sluicegate.entries (list, id, date, title)
    VALUES ('list-' || :l, :id, '2026-12-02', 'c42-123456')
    ON CONFLICT (list, id) DO UPDATE SET date = excluded.date, title = excluded.title;
END;
