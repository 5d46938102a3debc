-- decant test bed: MariaDB rows present BEFORE Debezium's snapshot (read by the snapshot: op r).
--   mariadb -D DATABASE < mysql_workload_snapshot.sql   (after mysql_typezoo.sql)
SET NAMES utf8mb4;
SET time_zone = '+00:00';

-- 1: every column at its largest (TIME at +838:59:59)
INSERT INTO zoo VALUES (1,
    127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
    9223372036854775807, 18446744073709551615,
    1, b'1', b'1010101011',
    99999999.99, 1234567890123456789012345678.0123456789,
    3.14, 2.718281828459045,
    '9999-12-31', '838:59:59', '838:59:59', '9999-12-31 23:59:59.999999',
    '2038-01-19 03:14:07.999999', 2155,
    'large', 'red,blue', '{"a": [1, 2.50, "x"], "b": null, "c": {"d": true}}',
    'héllo wörld ✓', 'text with ''quotes'' and a tab\there', x'00FF10', x'DEADBEEF',
    ST_GeomFromText('POINT(1.5 -2.25)'));

-- 2: every column at its smallest (TIME at -838:59:59)
INSERT INTO zoo VALUES (2,
    -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
    -9223372036854775808, 0,
    0, b'0', b'0000000001',
    -99999999.99, -0.0000000001,
    -0.25, -1e-300,
    '1000-01-01', '-838:59:59', '-838:59:59', '1000-01-01 00:00:00',
    '1970-01-01 00:00:01', 1901,
    'small', '', '[]',
    '', '', x'', x'',
    ST_GeomFromText('POINT(0 0)'));

-- 3: all NULL but the key
INSERT INTO zoo (id) VALUES (3);

-- 4: the small negative times
INSERT INTO zoo (id, c_int, c_time, c_time0, c_dec, c_float, c_double, c_datetime, c_ts) VALUES
    (4, 4, '-00:00:00.000001', '-00:00:01', 0.00, 0, 0, '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.5');

-- 5: the fraction of a negative span, times past 24 hours
INSERT INTO zoo (id, c_int, c_time, c_time0, c_enum, c_set, c_json) VALUES
    (5, 5, '-01:30:00.5', '25:00:00', 'medium', 'green', '"just a string"');

INSERT INTO composite VALUES
    (1, 'a', 'one a', 10),
    (1, 'b', 'one b', 11),
    (2, 'a', 'two a', 20);
