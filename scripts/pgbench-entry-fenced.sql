-- pgbench script: one durable write of a cluster node, as scripts/pgbench-entry.sql
-- plus the fence check every fenced store makes first (a share lock on the list's
-- fence row where it equals the store's epoch). Needs the schema a cluster node
-- creates and fence rows for list-1 .. list-1000 at epoch 1:
--   psql DB -c "INSERT INTO sluicegate.fences SELECT 'list-' || g, 1 FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING"
--   pgbench -n -f scripts/pgbench-entry-fenced.sql -c 16 -j 2 -T 10 DB
\set l random(1, 1000)
\set id random(1, 99999999)
BEGIN;
SELECT f.list FROM sluicegate.fences f
    JOIN unnest(ARRAY['list-' || :l], ARRAY[1::bigint]) AS u(list, fence)
      ON f.list = u.list AND f.fence = u.fence
    FOR SHARE OF f;
INSERT INTO sluicegate.lists (name, next_id) VALUES ('list-' || :l, :id + 1)
    ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id;
INSERT INTO sluicegate.entries (list, id, date, title)
    VALUES ('list-' || :l, :id, '2026-12-02', 'c42-123456')
    ON CONFLICT (list, id) DO UPDATE SET date = excluded.date, title = excluded.title;
END;
