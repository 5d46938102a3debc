-- decant test bed: MariaDB changes made AFTER Debezium's snapshot (streamed from the binlog:
-- ops c/u/d). Each statement outside START TRANSACTION/COMMIT is its own transaction.
--   mariadb -D DATABASE < mysql_workload_stream.sql   (after mysql_workload_snapshot.sql)
SET NAMES utf8mb4;
SET time_zone = '+00:00';

-- the extremes again, now through the binlog (a different decoder in Debezium than the snapshot)
INSERT INTO zoo VALUES (10,
    -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
    -9223372036854775808, 18446744073709551615,
    1, b'1', b'1111111111',
    -12345678.90, 99999999999999999999999999.9999999999,
    -1.5, 1.7976931348623157e308,
    '2000-02-29', '-838:59:59', '-838:59:59', '1000-01-01 00:00:00.000001',
    '2038-01-19 03:14:07.999999', 1901,
    'medium', 'red,green,blue', '{"n": -0.0, "big": 123456789012345678901234567890}',
    'ünïcödé 🚀', 'line one\nline two', x'0001027F80FF', x'',
    ST_GeomFromText('POINT(-180 90)'));
INSERT INTO zoo (id, c_time, c_time0, c_int) VALUES
    (11, '-00:00:00.000001', '838:59:59', 11),
    (12, '-01:30:00.5', '-00:00:01', 12),
    (13, '838:59:59.999999', '00:00:00', 13);

-- updates: many columns of one row, one column of another, a row back to NULLs
UPDATE zoo SET c_varchar = 'updated', c_dec = 0.01, c_time = '-12:34:56.789', c_bit10 = b'0100000000',
    c_set = 'blue', c_enum = NULL, c_json = '{"updated": true}', c_ts = '2001-09-09 01:46:40'
    WHERE id = 1;
UPDATE zoo SET c_bool = 1 WHERE id = 3;
UPDATE zoo SET c_tinyint = NULL, c_bigint_u = NULL, c_geom = NULL, c_blob = NULL WHERE id = 10;

-- a delete
DELETE FROM zoo WHERE id = 2;

-- a primary-key change (Debezium: a delete of the old key and a create of the new one)
UPDATE zoo SET id = 20, c_int = 20 WHERE id = 4;

-- one transaction of several statements over two tables
START TRANSACTION;
INSERT INTO composite VALUES (3, 'c', 'three c', 30);
UPDATE composite SET v = 'one a, edited', n = n + 1 WHERE a = 1 AND b = 'a';
DELETE FROM composite WHERE a = 2 AND b = 'a';
UPDATE composite SET b = 'bb' WHERE a = 1 AND b = 'b';
UPDATE zoo SET c_time0 = '-838:59:59', c_text = 'in the transaction' WHERE id = 5;
INSERT INTO zoo (id, c_int, c_time) VALUES (21, 21, '-00:00:00.5');
DELETE FROM zoo WHERE id = 21;
COMMIT;
