-- Seeds a MIGRATED, EMPTY PostgreSQL database for the dashboard measurement of docs/PERFORMANCE.md
-- (issue 11): 1,000,000 users, 10,000 products (2 units + 5 in stock each), 1,000,000 rental orders with one
-- line and one invoice each, spread over the two years before now and the four months after.
-- Run by `cargo xtask dashboard-bench --seed` (statement by statement; no psql meta-commands here); never
-- against a database that holds anything else.
SET synchronous_commit = off;

INSERT INTO users (id, email, full_name, password_hash, is_active, is_superuser, created_at, updated_at)
SELECT gen_random_uuid(), 'bench-' || i || '@example.com', 'Bench User ' || i, NULL,
       i % 10 <> 0, i <= 5,
       now() - make_interval(secs => i * 63), now()
FROM generate_series(1, 1000000) AS i;

INSERT INTO categories (id, slug, name, created_at, updated_at)
SELECT gen_random_uuid(), 'bench-category-' || i, 'Bench category ' || i, now(), now()
FROM generate_series(1, 20) AS i;

INSERT INTO locations (id, name, created_at)
SELECT gen_random_uuid(), 'Bench location ' || i, now() FROM generate_series(1, 5) AS i;

CREATE TEMP TABLE bench_categories AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM categories;
CREATE TEMP TABLE bench_locations AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM locations;

INSERT INTO products (id, category_id, sku, name, currency, price_per_day_minor, price_per_week_minor,
                      price_per_month_minor, deposit_minor, late_fee_per_day_minor, buffer_minutes, is_active,
                      created_at, updated_at)
SELECT gen_random_uuid(), c.id, 'BENCH-' || i, 'Bench product ' || i, 'EUR', 1000 + i % 5000, NULL, NULL, 0, 0, 0,
       TRUE, now(), now()
FROM generate_series(1, 10000) AS i JOIN bench_categories c ON c.n = i % 20;

CREATE TEMP TABLE bench_products AS SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM products;

INSERT INTO units (id, product_id, serial_number, condition, location_id, created_at)
SELECT gen_random_uuid(), p.id, 'BENCH-SN-' || p.n || '-' || k, 'good', l.id, now()
FROM bench_products p CROSS JOIN generate_series(1, 2) AS k JOIN bench_locations l ON l.n = p.n % 5;

INSERT INTO stock_levels (product_id, location_id, quantity, updated_at)
SELECT p.id, l.id, 5, now() FROM bench_products p JOIN bench_locations l ON l.n = p.n % 5;

CREATE TEMP TABLE bench_customers AS
SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM users WHERE NOT is_superuser;
ANALYZE bench_customers;

-- Order i starts i minutes before "now + 4 months" (so 1,000,000 orders span about 1.9 years) and lasts 1 to
-- 7 days. Orders that ended before now are closed (returned or cancelled now and then); running ones are
-- picked up, a few overdue; future ones are reserved or quotes.
CREATE TEMP TABLE bench_orders AS
SELECT gen_random_uuid() AS id, i, c.id AS customer_id,
       date_trunc('minute', now() + interval '120 days' - make_interval(mins => i)) AS starts_at,
       1 + i % 7 AS days
FROM generate_series(1, 1000000) AS i JOIN bench_customers c ON c.n = (i::bigint * 7919) % 999995;
ALTER TABLE bench_orders ADD COLUMN ends_at timestamptz, ADD COLUMN status text;
UPDATE bench_orders SET ends_at = starts_at + make_interval(days => days);
UPDATE bench_orders SET status = CASE
    WHEN i % 25 = 0 THEN 'cancelled'
    WHEN ends_at <= now() - interval '3 days' THEN CASE WHEN i % 50 = 1 THEN 'returned' ELSE 'closed' END
    WHEN starts_at <= now() THEN 'picked_up'
    WHEN i % 10 = 0 THEN 'quote'
    ELSE 'reserved' END;

INSERT INTO rental_orders (id, customer_id, status, currency, subtotal_minor, tax_rate_bp, tax_minor, total_minor,
                           deposit_minor, starts_at, ends_at, notes, created_by, created_at, updated_at,
                           picked_up_at, returned_at)
SELECT id, customer_id, status, 'EUR', 1000 * days, 0, 0, 1000 * days, 0, starts_at, ends_at, NULL, NULL,
       starts_at - interval '2 days', starts_at - interval '2 days',
       CASE WHEN status IN ('picked_up', 'returned', 'closed') THEN starts_at END,
       CASE WHEN status IN ('returned', 'closed') THEN ends_at END
FROM bench_orders;

INSERT INTO order_lines (id, order_id, product_id, quantity, starts_at, ends_at, hold_until, holds_stock, currency,
                         price_per_day_minor, price_per_week_minor, price_per_month_minor, deposit_per_unit_minor,
                         late_fee_per_day_minor, buffer_minutes, charged_days, months, weeks, days,
                         unit_price_minor, line_total_minor, usage_pending, order_holding)
SELECT gen_random_uuid(), o.id, p.id, 1, o.starts_at, o.ends_at, o.ends_at, o.status IN ('reserved', 'picked_up'),
       'EUR', 1000, NULL, NULL, 0, 0, 0, o.days, 0, 0, o.days, 1000 * o.days, 1000 * o.days, 0,
       o.status IN ('reserved', 'picked_up')
FROM bench_orders o JOIN bench_products p ON p.n = o.i % 10000;

INSERT INTO invoices (id, order_id, customer_id, number, year, seq, status, currency, subtotal_minor, tax_rate_bp,
                      tax_minor, total_minor, amount_paid_minor, issued_at, issued_on, created_at, updated_at)
SELECT gen_random_uuid(), o.id, o.customer_id,
       CASE WHEN o.status <> 'quote' THEN 'B-' || o.i END, NULL, NULL,
       CASE o.status WHEN 'quote' THEN 'draft' WHEN 'cancelled' THEN 'void' WHEN 'closed' THEN 'paid' ELSE 'open' END,
       'EUR', 1000 * o.days, 0, 0, 1000 * o.days, CASE WHEN o.status = 'closed' THEN 1000 * o.days ELSE 0 END,
       CASE WHEN o.status <> 'quote' THEN o.starts_at - interval '2 days' END,
       CASE WHEN o.status <> 'quote' THEN CAST(o.starts_at - interval '2 days' AS date) END,
       o.starts_at - interval '2 days', o.starts_at - interval '2 days'
FROM bench_orders o;

VACUUM ANALYZE;
