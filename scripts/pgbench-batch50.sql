-- pgbench script: one group commit of a cluster node as PostgreSQL sees it: 50 lists
-- fenced and written in one transaction (their fence rows share-locked, then one
-- list row and one entry row each, by set statements as sluicegate sends them), each
-- client on lists of its own (as each list goes to one database worker). Needs the
-- cluster schema and fence rows for c0-1 .. c63-50 at epoch 1:
--   psql DB -c "INSERT INTO sluicegate.fences SELECT 'c' || c || '-' || g, 1 FROM generate_series(0, 63) c, generate_series(1, 50) g ON CONFLICT DO NOTHING"
--   pgbench -n -f scripts/pgbench-batch50.sql -c 16 -j 2 -T 10 DB     # writes/s = tps x 50
\set id random(1, 99999999)
BEGIN;
SELECT f.list FROM sluicegate.fences f
    JOIN (SELECT 'c' || :client_id || '-' || g AS list, 1::bigint AS fence FROM generate_series(1, 50) g) u
      ON f.list = u.list AND f.fence = u.fence
    FOR SHARE OF f;
INSERT INTO sluicegate.lists (name, next_id)
    SELECT 'c' || :client_id || '-' || g, :id + 1 FROM generate_series(1, 50) g
    ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id;
INSERT INTO sluicegate.entries (list, id, date, title)
    SELECT 'c' || :client_id || '-' || g, :id, '2026-12-02', 'c42-123456' FROM generate_series(1, 50) g
    ON CONFLICT (list, id) DO UPDATE SET date = excluded.date, title = excluded.title;
END;
