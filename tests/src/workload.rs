//! What the crash and fencing tests share: the sustained crash workload, a reproducible kill
//! schedule, and reading decant's counters from `/metrics`.

use std::time::Duration;

use crate::bed::http_get;

/// One workload round: several transactions over four tables, with primary-key changes of rows
/// whose TOASTed column is unchanged (DEFAULT and FULL replica identity).
pub fn round_sql(schema: &str, i: u64) -> String {
    format!(
        r#"SET search_path TO "{schema}";
BEGIN;
INSERT INTO toasty SELECT g, g, 'l' || g, big_text('t' || g || ':{i}', 100)
  FROM generate_series({lo}, {hi}) g ON CONFLICT (id) DO UPDATE SET small = toasty.small + 1;
UPDATE toasty SET small = small + 1 WHERE id % 7 = {m7};
COMMIT;
BEGIN;
UPDATE toasty SET big = big_text('u{i}', 90), label = 'x{i}' WHERE id % 11 = {m11};
DELETE FROM toasty WHERE id % 13 = {m13} AND id > 100;
INSERT INTO composite VALUES ({i}, 'k{i}', 'v{i}', {i}) ON CONFLICT DO NOTHING;
UPDATE composite SET qty = qty + 1, val = 'w{i}' WHERE k_int % 5 = {m5};
COMMIT;
UPDATE composite SET k_text = k_text || 'x' WHERE k_int = {prev};
UPDATE toasty SET id = {moved} WHERE id = {lo};
UPDATE toasty SET small = small + 1 WHERE id = {moved} AND {i} % 2 = 0;
INSERT INTO typezoo_full (id, c_note, c_big) VALUES ({fid}, 'f{i}', big_text('f{i}', 80));
UPDATE typezoo_full SET id = id + 100000 WHERE id = {fid} - 1;
DELETE FROM composite WHERE k_int = {old};
INSERT INTO typezoo (id, c_int, c_text, c_big) VALUES ({zid}, {i}, 'r{i}', big_text('z{i}', 80))
  ON CONFLICT (id) DO UPDATE SET c_int = excluded.c_int, c_text = excluded.c_text;
UPDATE typezoo SET c_jsonb = jsonb_build_object('i', {i}) WHERE id = {zid2};
"#,
        lo = 100 + (i % 40) * 5,
        hi = 104 + (i % 40) * 5,
        m7 = i % 7,
        m11 = i % 11,
        m13 = i % 13,
        m5 = i % 5,
        prev = i.saturating_sub(3),
        old = i.saturating_sub(30),
        zid = 1000 + i % 25,
        moved = 1_000_000 + i,
        fid = 5000 + i,
        zid2 = 1000 + (i * 7) % 25,
    )
}

/// How many times the crash tests kill `decant run`: `DECANT_CRASH_KILLS`, default 22 (the
/// README's long run uses 50).
pub fn crash_kills() -> usize {
    std::env::var("DECANT_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(22)
}

/// Environment of the incarnations that flush small: `flush_max_rows` of 20 makes decant hand
/// rows to its sink every few records, so a kill leaves produced-but-uncommitted records (Kafka)
/// or written-but-unpublished files (Iceberg) behind, and the abort path is exercised.
pub const SMALL_FLUSHES: (&str, &str) = ("DECANT_DELIVERY__FLUSH_MAX_ROWS", "20");

/// The value of the first `/metrics` line starting with `series` (name and labels).
pub fn metric(port: u16, series: &str) -> Option<f64> {
    http_get(port, "/metrics").and_then(|(_, m)| {
        m.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    })
}

/// Transactions (Iceberg sink: batches) this incarnation committed (0 when not reachable yet).
pub fn committed(port: u16) -> u64 {
    metric(port, "decant_transactions_total{outcome=\"committed\"}").map_or(0, |v| v as u64)
}

/// How many changes decant's log (all incarnations) says it skipped as sent again by the
/// connector from before their key's delete: at-least-once re-sends after the Connect worker's
/// or the broker's restart that happened to meet that case.
pub fn resent_before_delete(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .map(|l| l.matches("older than the key's delete: skipped").count())
        .unwrap_or(0)
}

/// How many data records of `records` repeat an earlier one of their topic byte for byte (key
/// and value): a Debezium change event carries its source position, so a repeat is the
/// connector sending it again (at least once), not a new change.
pub fn resent_records(records: &[crate::Input]) -> usize {
    let mut seen = std::collections::HashSet::new();
    records
        .iter()
        .filter(|r| r.value.is_some())
        .filter(|r| !seen.insert((&r.topic, &r.key, &r.value)))
        .count()
}

/// xorshift64*: reproducible "random" kill moments from a seed the test prints.
pub struct Rng(pub u64);
impl Rng {
    fn step(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.step() % (hi - lo))
    }
}
