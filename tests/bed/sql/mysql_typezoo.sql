-- decant test bed: a MariaDB database with a wide MySQL/MariaDB type mix.
--   mariadb -D DATABASE < mysql_typezoo.sql      (the database exists and is empty)
-- Tables: zoo (one column per type), composite (int + varchar primary key) and marker
-- (end-of-workload sentinel). Data comes from mysql_workload_snapshot.sql (before Debezium's
-- snapshot) and mysql_workload_stream.sql (streamed from the binlog); both are deterministic.
--
-- Left out on purpose: types that Debezium's MariaDB connector (3.5/3.6) gets wrong on MariaDB
-- 10.11, so that they would test Debezium rather than decant:
--   UUID           null from the snapshot, garbled from the binlog
--   INET4 / INET6  the connector's DDL parser stops the connector
--   YEAR 0000      arrives as 1 (snapshot) or 1900 (binlog)
--   zero dates     '0000-00-00' (and zero datetimes) arrive as null
SET NAMES utf8mb4;
SET time_zone = '+00:00';

CREATE TABLE zoo (
    id            int NOT NULL PRIMARY KEY,
    c_tinyint     tinyint,
    c_tinyint_u   tinyint unsigned,
    c_smallint    smallint,
    c_smallint_u  smallint unsigned,
    c_mediumint   mediumint,
    c_mediumint_u mediumint unsigned,
    c_int         int,
    c_int_u       int unsigned,
    c_bigint      bigint,
    c_bigint_u    bigint unsigned,
    c_bool        tinyint(1),
    c_bit1        bit(1),
    c_bit10       bit(10),
    c_dec         decimal(10,2),
    c_dec38       decimal(38,10),
    -- FLOAT: values that MariaDB's 6-significant-digit text (what the snapshot reads) keeps exactly
    c_float       float,
    c_double      double,
    c_date        date,
    c_time        time(6),
    c_time0       time,
    c_datetime    datetime(6),
    c_ts          timestamp(6) NULL DEFAULT NULL,
    c_year        year,
    c_enum        enum('small', 'medium', 'large'),
    c_set         set('red', 'green', 'blue'),
    c_json        json,
    c_varchar     varchar(100),
    c_text        text,
    c_blob        blob,
    c_varbinary   varbinary(16),
    c_geom        geometry
);

CREATE TABLE composite (
    a  int NOT NULL,
    b  varchar(20) NOT NULL,
    v  text,
    n  bigint,
    PRIMARY KEY (a, b)
);

CREATE TABLE marker (
    id   int NOT NULL PRIMARY KEY,
    note varchar(20)
);
