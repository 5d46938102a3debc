-- decant test bed: rows present BEFORE Debezium starts (captured as snapshot reads, op "r").
--   psql -v ON_ERROR_STOP=1 -v schema=NAME -f workload_snapshot.sql     (after typezoo.sql)
\set ON_ERROR_STOP on
SET search_path TO :"schema";

INSERT INTO typezoo VALUES
  -- 1: ordinary values of every type, plus a 10560-char out-of-line (TOASTed) text
  (1, 12345, 2147483647, 9223372036854775807, 1234567.89, 12345678901234567890.0123456789, 4.82,
   1234.56, 3.14, 2.718281828459045, true, 'ab', 'varchar value', 'plain text',
   '2024-02-29', '13:45:30.123456', '13:45:30.123', '13:45:30.5+05:30',
   '2024-02-29 12:34:56.789012', '2024-02-29 12:34:56.789', '2024-02-29 12:34:56.789012+01',
   '1 year 2 mons 3 days 04:05:06.5', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
   '{"a": 1, "b": [true, null, 2.50], "c": "x"}',
   '{"k": {"n": 12345678901234567890}, "arr": [1, "two"]}',
   '<doc a="1">x &amp; y</doc>', '\xdeadbeef00ff', 'happy', '{1,2,NULL,4}',
   '{"a","b c",NULL,"q\"uote"}', '127.0.0.1', '(1.5,-2.25)', big_text('zoo-1', 330)),
  -- 2: edge values (min ints, NaN/Infinity floats, infinity timestamp, pre-epoch, empty values)
  (2, -32768, -2147483648, -9223372036854775808, -0.01, -0.0000000001,
   123456789012345678901234567890.123456789, -12.34, 'Infinity', 'NaN', false, 'abcde', '',
   E'tab\there\nnewline "quoted" back\\slash', '1969-12-31', '00:00:00', '23:59:59.999',
   '23:30:00-02', 'infinity', '1969-07-20 20:17:40.5', '1900-01-01 00:00:00+00',
   '-1 mons -2 days +03:00:00', '00000000-0000-0000-0000-000000000000', '[]', '{}', '<empty/>',
   '\x', 'sad', '{}', '{}', '2001:db8::1/64', '(0,0)', 'short'),
  -- 3: NULL in every nullable column
  (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL);

INSERT INTO typezoo_full VALUES
  (1, 10.50, 1.0e-7, '2000-01-01 00:00:00', '2000-01-01 00:00:00+00', '36 hours', '{"x": 1}',
   '\x00', '{x,y}', 'ok', 'first', big_text('full-1', 80)),
  (2, -99.99, '-Infinity', '-infinity', NULL, '-00:00:00.000001', NULL, NULL, NULL, NULL,
   'second', NULL);

INSERT INTO composite VALUES
  (1, 'a', 'one-a', 1.5),
  (1, 'b', 'one-b', NULL),
  (2, 'ä', 'two-ä', -0.001);

INSERT INTO toasty VALUES
  (1, 1, 'one', big_text('toasty-1', 100)),
  (2, 2, 'two', 'not toasted');
