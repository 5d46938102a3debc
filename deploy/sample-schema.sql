-- The sample table the compose stack captures.
CREATE TABLE orders (
    order_id     bigserial PRIMARY KEY,
    customer     text NOT NULL,
    total        numeric(12,2) NOT NULL,
    status       text NOT NULL DEFAULT 'new',
    placed_at    timestamptz NOT NULL DEFAULT now(),
    notes        jsonb
);
INSERT INTO orders (customer, total, notes)
SELECT 'customer-' || g, (g * 7.35)::numeric(12,2), jsonb_build_object('n', g)
FROM generate_series(1, 20) AS g;
