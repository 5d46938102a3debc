-- decant test bed: schema + tables with a wide PostgreSQL type mix.
--   psql -v ON_ERROR_STOP=1 -v schema=NAME -f typezoo.sql
-- Creates schema :"schema" (it must not exist) and in it: enum type mood, tables typezoo
-- (REPLICA IDENTITY DEFAULT), typezoo_full (REPLICA IDENTITY FULL), composite (int+text PK),
-- toasty (PK + out-of-line text, DEFAULT identity) and marker (end-of-workload sentinel).
-- All data comes from workload_snapshot.sql / workload_stream.sql and is deterministic.
\set ON_ERROR_STOP on
CREATE SCHEMA :"schema";
SET search_path TO :"schema";

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');

-- Deterministic, incompressible text: n concatenated md5 hex digests (32 chars each).
CREATE FUNCTION big_text(seed text, n integer) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT string_agg(md5(seed || ':' || g), '' ORDER BY g) FROM generate_series(1, n) AS g $$;

CREATE TABLE typezoo (
    id           integer PRIMARY KEY,
    c_smallint   smallint,
    c_int        integer,
    c_bigint     bigint,
    c_num_12_2   numeric(12,2),
    c_num_38_10  numeric(38,10),
    c_num        numeric,
    c_money      money,
    c_real       real,
    c_double     double precision,
    c_bool       boolean,
    c_char       char(5),
    c_varchar    varchar(40),
    c_text       text,
    c_date       date,
    c_time       time,
    c_time3      time(3),
    c_timetz     timetz,
    c_ts         timestamp,
    c_ts3        timestamp(3),
    c_tstz       timestamptz,
    c_interval   interval,
    c_uuid       uuid,
    c_json       json,
    c_jsonb      jsonb,
    c_xml        xml,
    c_bytea      bytea,
    c_enum       mood,
    c_int_arr    integer[],
    c_text_arr   text[],
    c_inet       inet,
    c_point      point,
    c_big        text
);
-- EXTERNAL = out-of-line, uncompressed: a >2 KB value really lives in the TOAST table.
ALTER TABLE typezoo ALTER COLUMN c_big SET STORAGE EXTERNAL;

CREATE TABLE typezoo_full (
    id           integer PRIMARY KEY,
    c_num_12_2   numeric(12,2),
    c_double     double precision,
    c_ts         timestamp,
    c_tstz       timestamptz,
    c_interval   interval,
    c_jsonb      jsonb,
    c_bytea      bytea,
    c_text_arr   text[],
    c_enum       mood,
    c_note       varchar(40),
    c_big        text
);
ALTER TABLE typezoo_full ALTER COLUMN c_big SET STORAGE EXTERNAL;
ALTER TABLE typezoo_full REPLICA IDENTITY FULL;

CREATE TABLE composite (
    k_int   integer,
    k_text  text,
    val     varchar(20),
    qty     numeric(10,3),
    PRIMARY KEY (k_int, k_text)
);

CREATE TABLE toasty (
    id     bigint PRIMARY KEY,
    small  integer NOT NULL,
    label  varchar(20),
    big    text
);
ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL;

CREATE TABLE marker (
    id     integer PRIMARY KEY,
    label  text NOT NULL
);
