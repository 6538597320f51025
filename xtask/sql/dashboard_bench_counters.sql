-- Prototype of the alternative the issue asks to measure: counters kept in the same transactions as the writes
-- (here by triggers) instead of aggregates over the tables. Run on the seeded bench database only (it adds a
-- table, two triggers and one index there). Prints the read cost of the dashboard from the counters plus
-- the range statements that cannot be counters, and the write cost the triggers add.
\set ON_ERROR_STOP on
\timing on
DROP TABLE IF EXISTS bench_counters;
CREATE TABLE bench_counters (name text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO bench_counters
SELECT 'users_total', COUNT(*) FROM users UNION ALL
SELECT 'users_active', COUNT(*) FILTER (WHERE is_active) FROM users UNION ALL
SELECT 'users_superusers', COUNT(*) FILTER (WHERE is_superuser) FROM users UNION ALL
SELECT 'orders_' || status, COUNT(*) FROM rental_orders GROUP BY status;

CREATE OR REPLACE FUNCTION bench_count_users() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    UPDATE bench_counters SET value = value + 1 WHERE name = 'users_total' AND TG_OP = 'INSERT';
    UPDATE bench_counters SET value = value + 1 WHERE name = 'users_active' AND NEW.is_active
      AND (TG_OP = 'INSERT' OR NOT OLD.is_active);
    UPDATE bench_counters SET value = value - 1 WHERE name = 'users_active' AND TG_OP = 'UPDATE'
      AND OLD.is_active AND NOT NEW.is_active;
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bench_count_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' OR NEW.status <> OLD.status THEN
    UPDATE bench_counters SET value = value + 1 WHERE name = 'orders_' || NEW.status;
    IF TG_OP = 'UPDATE' THEN
      UPDATE bench_counters SET value = value - 1 WHERE name = 'orders_' || OLD.status;
    END IF;
  END IF;
  RETURN NULL;
END $$;

-- Read side: the counters, and what stays a range statement (now = now()).
CREATE INDEX IF NOT EXISTS bench_idx_orders_holding ON rental_orders (starts_at)
  WHERE status IN ('reserved', 'picked_up');
ANALYZE rental_orders;
\echo 'read: counters'
EXPLAIN (ANALYZE) SELECT name, value FROM bench_counters;
\echo 'read: users new today and this week (range on idx_users_created_at)'
EXPLAIN (ANALYZE) SELECT COUNT(*) FILTER (WHERE created_at >= date_trunc('day', now())), COUNT(*)
  FROM users WHERE created_at >= now() - interval '7 days';
\echo 'read: overdue and due today (range on idx_rental_orders_status_ends_at)'
EXPLAIN (ANALYZE) SELECT COUNT(*) FILTER (WHERE ends_at <= now()),
  COUNT(*) FILTER (WHERE ends_at > now() AND ends_at < date_trunc('day', now()) + interval '1 day')
  FROM rental_orders WHERE status = 'picked_up' AND ends_at < date_trunc('day', now()) + interval '1 day';
\echo 'read: held now, from the orders that hold stock and have started (partial index)'
EXPLAIN (ANALYZE) SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM rental_orders o
  JOIN order_lines l ON l.order_id = o.id
  WHERE o.status IN ('reserved', 'picked_up') AND o.starts_at <= now() AND o.ends_at > now()
    AND l.starts_at <= now() AND l.ends_at > now();

-- Write side: 20,000 single-row inserts of users and 20,000 status changes, without and with the triggers.
\echo 'write: 20,000 user inserts, no trigger'
DO $$ BEGIN FOR i IN 1..20000 LOOP
  INSERT INTO users (id, email, full_name, is_active, is_superuser, created_at, updated_at)
  VALUES (gen_random_uuid(), 'w0-' || i || '@example.com', 'W', TRUE, FALSE, now(), now());
END LOOP; END $$;
CREATE TRIGGER bench_users_count AFTER INSERT OR UPDATE ON users FOR EACH ROW EXECUTE FUNCTION bench_count_users();
CREATE TRIGGER bench_orders_count AFTER INSERT OR UPDATE OF status ON rental_orders FOR EACH ROW
  EXECUTE FUNCTION bench_count_orders();
\echo 'write: 20,000 user inserts, with the counter trigger'
DO $$ BEGIN FOR i IN 1..20000 LOOP
  INSERT INTO users (id, email, full_name, is_active, is_superuser, created_at, updated_at)
  VALUES (gen_random_uuid(), 'w1-' || i || '@example.com', 'W', TRUE, FALSE, now(), now());
END LOOP; END $$;
DROP TRIGGER bench_orders_count ON rental_orders;
\echo 'write: 20,000 order status changes (closed -> closed via returned), no trigger'
UPDATE rental_orders SET status = 'returned' WHERE id IN (SELECT id FROM rental_orders WHERE status = 'closed' LIMIT 20000);
CREATE TRIGGER bench_orders_count AFTER INSERT OR UPDATE OF status ON rental_orders FOR EACH ROW
  EXECUTE FUNCTION bench_count_orders();
\echo 'write: 20,000 order status changes back, with the counter trigger'
UPDATE rental_orders SET status = 'closed' WHERE id IN (SELECT id FROM rental_orders WHERE status = 'returned' LIMIT 20000);
SELECT name, value FROM bench_counters ORDER BY name;
DROP TRIGGER bench_users_count ON users;
DROP TRIGGER bench_orders_count ON rental_orders;
DELETE FROM users WHERE email LIKE 'w0-%' OR email LIKE 'w1-%';
