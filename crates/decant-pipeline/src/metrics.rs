//! Every metric decant exports, declared in one place. Names follow
//! `decant_<noun>_<unit>[_total]`; labels are bounded: table names (from the source schema),
//! ops and error classes (fixed sets), and assigned partitions — never keys or error text.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Source records read, by table (`unknown` before the table is known) and op (`upsert`,
    /// `delete`, a control kind, or `error`).
    pub input_records: IntCounterVec,
    /// Records written to output topics, by table and op (`upsert`, `delete`).
    pub output_records: IntCounterVec,
    /// Records the decoder rejected, by error class.
    pub decode_errors: IntCounterVec,
    /// Records written to the dead-letter topic, by table and reason.
    pub dead_letter_records: IntCounterVec,
    /// Records dropped on purpose (skip policy, op filter), by table and reason.
    pub skipped_records: IntCounterVec,
    /// Upserts dropped by a table's `where` filter, by table.
    pub filtered_records: IntCounterVec,
    /// Consumer lag in records per assigned source partition.
    pub consumer_lag: IntGaugeVec,
    /// Time to commit one Kafka transaction (or offset commit in at-least-once mode).
    pub commit_duration: Histogram,
    /// Source commit time (`source.ts_ms`) to handing the record to the producer.
    pub source_latency: Histogram,
    /// TOAST-unchanged values filled from the state store, by table.
    pub toast_fills: IntCounterVec,
    /// TOAST-unchanged values never seen before, by table and the policy applied.
    pub toast_misses: IntCounterVec,
    /// Transactions by outcome (`committed`, `aborted`).
    pub transactions: IntCounterVec,
    /// Abort-and-rewind cycles by reason (`kafka_error`, `revoked`).
    pub rewinds: IntCounterVec,
    /// Source partitions stopped by a `fail` policy.
    pub quarantined_partitions: IntGauge,
    /// Destination tables stopped by an incompatible schema change (Iceberg sink).
    pub stopped_tables: IntGauge,
    /// Keys in the state store (refreshed at commit).
    pub state_keys: IntGauge,
    /// Source partitions currently assigned to this instance.
    pub assigned_partitions: IntGauge,
    /// 1 while the loop waits for a dependency that is down (`schema_registry`).
    pub waiting: IntGaugeVec,
    /// Attempts that found a dependency down, by dependency.
    pub dependency_retries: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition");
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("static metric definition");
    r.register(Box::new(h.clone()))
        .expect("metric names are unique");
    h
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("static metric definition");
    r.register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let lag = IntGaugeVec::new(
            Opts::new(
                "decant_consumer_lag_records",
                "Consumer lag per assigned source partition, in records",
            ),
            &["topic", "partition"],
        )
        .expect("static metric definition");
        r.register(Box::new(lag.clone()))
            .expect("metric names are unique");
        Metrics {
            input_records: counter(
                &r,
                "decant_input_records_total",
                "Source records read, by table and op",
                &["table", "op"],
            ),
            output_records: counter(
                &r,
                "decant_output_records_total",
                "Records written to output topics, by table and op",
                &["table", "op"],
            ),
            decode_errors: counter(
                &r,
                "decant_decode_errors_total",
                "Source records the decoder rejected, by error class",
                &["kind"],
            ),
            dead_letter_records: counter(
                &r,
                "decant_dead_letter_records_total",
                "Records written to the dead-letter topic, by table and reason",
                &["table", "reason"],
            ),
            skipped_records: counter(
                &r,
                "decant_skipped_records_total",
                "Records dropped on purpose, by table and reason",
                &["table", "reason"],
            ),
            filtered_records: counter(
                &r,
                "decant_filtered_records_total",
                "Upserts dropped by the table's where filter, by table",
                &["table"],
            ),
            consumer_lag: lag,
            commit_duration: histogram(
                &r,
                "decant_transaction_commit_duration_seconds",
                "Time to commit a transaction (or the offsets, at least once)",
                vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
            source_latency: histogram(
                &r,
                "decant_source_to_output_latency_seconds",
                "From the source database commit (source.ts_ms) to the record handed to the producer",
                vec![
                    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
                ],
            ),
            toast_fills: counter(
                &r,
                "decant_toast_fills_total",
                "TOAST-unchanged values filled from the state store, by table",
                &["table"],
            ),
            toast_misses: counter(
                &r,
                "decant_toast_misses_total",
                "TOAST-unchanged values whose last value was never seen, by table and policy",
                &["table", "policy"],
            ),
            transactions: counter(
                &r,
                "decant_transactions_total",
                "Transactions by outcome",
                &["outcome"],
            ),
            rewinds: counter(
                &r,
                "decant_rewinds_total",
                "Abort-and-rewind cycles, by reason",
                &["reason"],
            ),
            quarantined_partitions: gauge(
                &r,
                "decant_quarantined_partitions",
                "Source partitions stopped at a record by a fail policy",
            ),
            stopped_tables: gauge(
                &r,
                "decant_stopped_tables",
                "Destination tables stopped until restart by an incompatible schema change",
            ),
            state_keys: gauge(&r, "decant_state_keys", "Keys in the local state store"),
            assigned_partitions: gauge(
                &r,
                "decant_assigned_partitions",
                "Source partitions assigned to this instance",
            ),
            waiting: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "decant_waiting",
                        "1 while the loop waits for a dependency that is down, by dependency",
                    ),
                    &["dependency"],
                )
                .expect("static metric definition");
                r.register(Box::new(g.clone()))
                    .expect("metric names are unique");
                g
            },
            dependency_retries: counter(
                &r,
                "decant_dependency_retries_total",
                "Attempts that found a dependency down (the record is retried, never skipped)",
                &["dependency"],
            ),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_scheme() {
        let m = Metrics::new();
        m.input_records.with_label_values(&["s.t", "upsert"]).inc();
        m.commit_duration.observe(0.01);
        let text = m.render();
        assert!(text.contains("decant_input_records_total{op=\"upsert\",table=\"s.t\"} 1"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(name.starts_with("decant_"), "{name}");
            if line.ends_with("counter") {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
    }
}
