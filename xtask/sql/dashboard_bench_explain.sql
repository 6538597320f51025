-- The dashboard's four statements (AnalyticsRepo::dashboard) with "now" = now(), as EXPLAIN ANALYZE.
\set ON_ERROR_STOP on
\timing on
EXPLAIN (ANALYZE, BUFFERS) SELECT COUNT(*) AS total,
  CAST(COALESCE(SUM(CASE WHEN is_active THEN 1 ELSE 0 END), 0) AS BIGINT) AS active,
  CAST(COALESCE(SUM(CASE WHEN is_superuser THEN 1 ELSE 0 END), 0) AS BIGINT) AS superusers,
  CAST(COALESCE(SUM(CASE WHEN created_at >= date_trunc('day', now()) THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_today,
  CAST(COALESCE(SUM(CASE WHEN created_at >= now() - interval '7 days' THEN 1 ELSE 0 END), 0) AS BIGINT) AS new_week
FROM users;
EXPLAIN (ANALYZE, BUFFERS) SELECT status, COUNT(*) AS n,
  CAST(COALESCE(SUM(CASE WHEN status = 'picked_up' AND ends_at <= now() THEN 1 ELSE 0 END), 0) AS BIGINT) AS overdue,
  CAST(COALESCE(SUM(CASE WHEN status = 'picked_up' AND ends_at > now() AND ends_at < date_trunc('day', now()) + interval '1 day' THEN 1 ELSE 0 END), 0) AS BIGINT) AS due_today
FROM rental_orders GROUP BY status;
EXPLAIN (ANALYZE, BUFFERS) SELECT currency,
  CAST(COALESCE(SUM(CASE WHEN issued_on = CURRENT_DATE THEN total_minor ELSE 0 END), 0) AS BIGINT) AS today,
  CAST(COALESCE(SUM(CASE WHEN issued_on >= date_trunc('month', now())::date THEN total_minor ELSE 0 END), 0) AS BIGINT) AS month,
  CAST(COALESCE(SUM(CASE WHEN issued_on >= CURRENT_DATE - 29 THEN total_minor ELSE 0 END), 0) AS BIGINT) AS last_30
FROM invoices WHERE status IN ('open', 'paid') AND issued_on <= CURRENT_DATE
  AND issued_on >= LEAST(date_trunc('month', now())::date, CURRENT_DATE - 29)
GROUP BY currency ORDER BY currency;
EXPLAIN (ANALYZE, BUFFERS) SELECT (SELECT CAST(COALESCE(SUM(l.quantity), 0) AS BIGINT) FROM order_lines l
  JOIN rental_orders o ON o.id = l.order_id WHERE o.status IN ('reserved', 'picked_up') AND l.starts_at <= now()
  AND l.ends_at > now()) AS held,
  (SELECT COUNT(*) FROM units) + (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM stock_levels) AS capacity;
