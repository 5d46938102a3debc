//! The live run every registry output format's test shares (`run_avro_output.rs`,
//! `run_protobuf_output.rs`): PostgreSQL → Debezium → broker → `decant run` with
//! `output.format = <format>` and the bed's registry, the stream workload, then a mid-stream
//! `ALTER TABLE … ADD COLUMN` (one row updated with it, one inserted) so the composite table's
//! value subject gets a second version. [`RegistryOutputRun::start`] returns once both
//! markers are out and the output has settled, every record checked to be framed; the test
//! then reads the records back with the format's independent reader ([`RegistryOutputRun::
//! compare_with_postgres`] for the comparison) and checks the registry.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::bed::{
    Bed, Broker, Debezium, DecantProcess, LiveSource, PgSchema, assert_no_duplicate_sources,
    consume, http_get, random_name, topics_with_prefix, upsert_changes, wait_for,
    write_decant_config,
};
use crate::registry::Registry;
use crate::{Input, PgMode, assert_pg_state};

/// A finished run: the output records and what is still running.
pub struct RegistryOutputRun {
    pub bed: Bed,
    pub broker: Broker,
    /// The source schema's name (the schema itself is dropped with the run).
    pub schema: String,
    pub registry: Registry,
    /// The output topics' prefix (`<out>.<schema>.<table>`).
    pub out: String,
    pub records: Vec<Input>,
    decant: DecantProcess,
    dbz: Debezium,
    _pg_schema: PgSchema,
    work: PathBuf,
    started: Instant,
}

impl RegistryOutputRun {
    /// Runs the workload through `decant run` writing `format` (see the module documentation).
    pub fn start(format: &str) -> RegistryOutputRun {
        let started = Instant::now();
        let LiveSource {
            bed,
            broker,
            schema,
            prefix,
            dbz,
        } = LiveSource::start();
        let registry = Registry::start();
        let bootstrap = broker.bootstrap();
        let out = random_name("out");
        let work = std::env::temp_dir().join(random_name(&format!("decant-{format}-out")));
        let extra = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
        let (config, port) = write_decant_config(&work, &bootstrap, &prefix, &out, &extra);
        let log = work.join("decant.log");
        let mut decant = DecantProcess::start(&config, &log, &[("DECANT_OUTPUT__FORMAT", format)]);
        wait_for(Duration::from_secs(60), "decant /ready", || {
            http_get(port, "/ready").filter(|(s, _)| *s == 200)
        });

        let s = schema.name.clone();
        bed.psql_files(&["workload_stream.sql"], &[("schema", &s)]);
        bed.psql(
            &format!("insert into \"{s}\".marker values (1, 'end')"),
            &[],
        );
        let before_alter = settle(&bootstrap, &out, 1, &mut decant).len();

        // Schema evolution mid-stream: a new column, one row given a value, a new row with it.
        bed.psql(
            &format!(
                "alter table \"{s}\".composite add column added_col integer; \
                 update \"{s}\".composite set added_col = 7 where k_int = 3; \
                 insert into \"{s}\".composite values (10, 'new', 'ten', 10.5, 70); \
                 insert into \"{s}\".marker values (2, 'end2')"
            ),
            &[],
        );
        let records = settle(&bootstrap, &out, 2, &mut decant);
        assert!(records.len() > before_alter);
        assert_no_duplicate_sources(&records);
        // Every record is framed: magic byte 0 and a schema id, keys and values alike.
        for r in &records {
            assert_eq!(
                r.key.as_deref().map(|k| k[0]),
                Some(0),
                "{}@{}",
                r.topic,
                r.offset
            );
            if let Some(v) = &r.value {
                assert_eq!(v[0], 0, "{}@{}", r.topic, r.offset);
            }
        }
        RegistryOutputRun {
            bed,
            broker,
            schema: s,
            registry,
            out,
            records,
            decant,
            dbz,
            _pg_schema: schema,
            work,
            started,
        }
    }

    /// The output topic of source table `table`.
    pub fn topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.out, self.schema)
    }

    /// The reader's JSON lines (kcat's shape: topic, partition, offset, key and payload as
    /// canonical JSON text) must be one per record and give PostgreSQL's final state.
    pub fn compare_with_postgres(&self, label: &str, lines: &[Json]) {
        assert_eq!(
            lines.len(),
            self.records.len(),
            "the reader read every record"
        );
        let inputs: Vec<Input> = lines
            .iter()
            .map(|l| Input::from_kcat(&l.to_string()))
            .collect();
        let run = upsert_changes(&self.out, &inputs);
        let expected = self.bed.pg_state(&self.schema);
        assert_pg_state(label, &run, &expected, PgMode::Exact);
    }

    /// Stops decant (it must exit cleanly), Debezium and the registry.
    pub fn finish(self, label: &str) {
        let status = self.decant.terminate(Duration::from_secs(60));
        assert!(status.success(), "decant exit status {status}");
        self.dbz.stop();
        self.registry.stop();
        let _ = std::fs::remove_dir_all(&self.work);
        eprintln!("{label}: {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// Records of `<out>.*` until `marker` has `markers` records and two reads agree.
fn settle(bootstrap: &str, out: &str, markers: usize, decant: &mut DecantProcess) -> Vec<Input> {
    let start = Instant::now();
    let mut last = usize::MAX;
    loop {
        let topics = topics_with_prefix(bootstrap, &format!("{out}."));
        let records = consume(bootstrap, &topics, 0, Duration::from_secs(2));
        let seen = records
            .iter()
            .filter(|r| r.topic.ends_with(".marker"))
            .count();
        if seen >= markers && records.len() == last {
            return records;
        }
        last = records.len();
        assert!(
            decant.is_running(),
            "decant exited:\n{}",
            decant.log_tail(60)
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "output did not settle ({} records, {seen} markers):\n{}",
            records.len(),
            decant.log_tail(60)
        );
        std::thread::sleep(Duration::from_secs(3));
    }
}
