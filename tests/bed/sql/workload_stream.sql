-- decant test bed: changes made AFTER Debezium's snapshot (streamed: ops c/u/d).
--   psql -v ON_ERROR_STOP=1 -v schema=NAME -f workload_stream.sql   (after workload_snapshot.sql)
-- Each statement outside BEGIN/COMMIT is its own transaction.
\set ON_ERROR_STOP on
SET search_path TO :"schema";

-- T1: one transaction over four tables
BEGIN;
INSERT INTO typezoo VALUES
  (4, 7, 8, 9, 0.00, 0, 0, 0.00, 'NaN', 'Infinity', true, 'ü', 'ünïcödé ✓', E'emoji 🚀 \u00e9 / \\u0000-ish',
   '9999-12-31', '12:00:00', '00:00:00.001', '00:00:00+00', '-infinity', '2000-02-29 23:59:59.999',
   'infinity', '1 mon', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '"just a string"', '[1, 2.0, -3e2]',
   '<a><b/></a>', '\x0001027f80ff', 'ok', '{-1}', '{""}', '::1', '(-0.5,1e+20)', 'small');
-- leaves the TOASTed c_big untouched -> Debezium sends __debezium_unavailable_value for it
UPDATE typezoo SET c_int = 42, c_text = 'updated in T1' WHERE id = 1;
UPDATE typezoo_full SET c_note = 'first, edited' WHERE id = 1;
INSERT INTO composite VALUES (3, 'c', 'three', 3);
UPDATE toasty SET small = small + 1 WHERE id = 1;
COMMIT;

-- numbers beyond f64 inside a JSON document (must reach every sink digit for digit)
UPDATE typezoo SET c_jsonb = '{"n": 12345678901234567890.5, "i": 18446744073709551616}' WHERE id = 1;

-- changes the TOASTed column
UPDATE toasty SET big = big_text('toasty-1b', 100), label = 'one*' WHERE id = 1;
UPDATE typezoo_full SET c_big = big_text('full-1b', 80) WHERE id = 1;

-- primary-key changes: delete (old key) + tombstone + create (new key)
UPDATE typezoo SET id = 20 WHERE id = 2;
UPDATE typezoo_full SET id = 11 WHERE id = 1;
UPDATE composite SET k_text = 'z' WHERE k_int = 1 AND k_text = 'b';
-- ... of rows whose TOASTed column is unchanged: with DEFAULT identity PostgreSQL sends the new
-- key's row without it (__debezium_unavailable_value), so it must come from the old key's value;
-- with and without a following update, and on the FULL-identity table
UPDATE toasty SET id = 901 WHERE id = 1;
UPDATE toasty SET small = small + 1 WHERE id = 901;
INSERT INTO toasty VALUES (910, 10, 'ten', big_text('toasty-910', 100));
UPDATE toasty SET id = 911 WHERE id = 910;
UPDATE typezoo_full SET c_note = 'moved, then edited' WHERE id = 11;

-- plain updates / deletes (typezoo keeps its all-NULL row 3; deletes with DEFAULT identity are in
-- composite and toasty, with FULL identity in typezoo_full)
UPDATE composite SET val = 'one-a*', qty = qty * 2 WHERE k_int = 1 AND k_text = 'a';
DELETE FROM typezoo_full WHERE id = 2;
DELETE FROM composite WHERE k_int = 2;
DELETE FROM toasty WHERE id = 2;

-- NULL in every nullable column, by update
UPDATE typezoo SET (c_smallint, c_int, c_bigint, c_num_12_2, c_num_38_10, c_num, c_money, c_real,
  c_double, c_bool, c_char, c_varchar, c_text, c_date, c_time, c_time3, c_timetz, c_ts, c_ts3,
  c_tstz, c_interval, c_uuid, c_json, c_jsonb, c_xml, c_bytea, c_enum, c_int_arr, c_text_arr,
  c_inet, c_point, c_big) = (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL) WHERE id = 4;

-- rows inserted then deleted (same transaction, and across transactions)
BEGIN;
INSERT INTO composite VALUES (9, 'tmp', 'gone', 0);
INSERT INTO toasty VALUES (3, 3, 'tmp', 'short-lived');
DELETE FROM composite WHERE k_int = 9;
DELETE FROM toasty WHERE id = 3;
COMMIT;
INSERT INTO toasty VALUES (4, 4, 'brief', NULL);
DELETE FROM toasty WHERE id = 4;
