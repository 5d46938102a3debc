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

/// The mid-load disturbances of the crash tests, by incarnation `k` of `kills`, each after a
/// random 0.5–3 s of the incarnation's run: the Connect worker stops cleanly (offsets flushed) and
/// resumes at a third; the broker stops and comes back (same data) at a half; the worker is killed
/// with SIGKILL and restarted at two thirds, so that Debezium sends again everything after its
/// last offset flush. With few kills several fall on one incarnation, and all of them run.
/// Re-sent records must not change the output.
pub fn disturb_mid_load(
    test: &str,
    k: usize,
    kills: usize,
    rng: &mut Rng,
    source: &crate::connect::ConnectSource,
) {
    if k == kills / 3 {
        std::thread::sleep(rng.millis(500, 3_000));
        source.restart_worker();
        eprintln!("{test}: Connect worker restarted under load");
    }
    if k == kills / 2 {
        std::thread::sleep(rng.millis(500, 3_000));
        source.broker.restart();
        eprintln!("{test}: broker restarted under load");
    }
    if k == kills * 2 / 3 {
        std::thread::sleep(rng.millis(500, 3_000));
        source.crash_worker();
        eprintln!("{test}: Connect worker killed (SIGKILL) and restarted under load");
    }
}

/// How many changes decant's log (all incarnations) says it skipped as sent again by the
/// connector from before their key's delete: at-least-once re-sends after the Connect worker's
/// or the broker's restart that happened to meet that case. Counted by source position, so a
/// change skipped again by a later incarnation (its first skip not committed) counts once.
pub fn resent_before_delete(log: &std::path::Path) -> usize {
    resent_before_delete_positions(log).len()
}

/// The source positions (topic, partition, offset) decant's log (all incarnations) names as
/// skipped for being sent again from before their key's delete.
pub fn resent_before_delete_positions(
    log: &std::path::Path,
) -> std::collections::HashSet<(String, i32, i64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("older than the key's delete: skipped"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["topic"].as_str()?.to_owned(),
                i32::try_from(v["partition"].as_i64()?).ok()?,
                v["offset"].as_i64()?,
            ))
        })
        .collect()
}

/// A record's key as text, without the embedded Connect schema when it has one.
fn key_payload(r: &crate::Input) -> String {
    let key = r.key.as_deref().unwrap_or_default();
    serde_json::from_slice::<serde_json::Value>(key)
        .ok()
        .and_then(|v| v.get("payload").map(ToString::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(key).into())
}

/// The data records of `sources` that produced no output (`produced` holds the provenance of
/// every output record) and that nothing explains, described for a failure message. The one
/// explained absence: a repeat of an earlier change of its topic (the connector sending it again,
/// see `resent_records`) that decant's log names as skipped, older than its key's delete. Returns
/// (explained, unexplained).
pub fn unexplained_absences(
    sources: &[crate::Input],
    produced: &std::collections::HashSet<(String, String, String)>,
    log: &std::path::Path,
) -> (usize, Vec<String>) {
    let skipped = resent_before_delete_positions(log);
    let mut earlier = std::collections::HashSet::new();
    let (mut explained, mut unexplained) = (0, Vec::new());
    for r in sources.iter().filter(|r| r.value.is_some()) {
        let repeat = !earlier.insert(change_identity(r));
        let position = (
            r.topic.clone(),
            r.partition.to_string(),
            r.offset.to_string(),
        );
        if produced.contains(&position) {
            continue;
        }
        let logged = skipped.contains(&(r.topic.clone(), r.partition, r.offset));
        if repeat && logged {
            explained += 1;
        } else {
            unexplained.push(format!(
                "{}[{}]@{} key {} (a repeat: {repeat}; logged as skipped: {logged})",
                r.topic,
                r.partition,
                r.offset,
                key_payload(r),
            ));
        }
    }
    (explained, unexplained)
}

/// What identifies one change event of Debezium's PostgreSQL connector whatever the run of the
/// connector that sent it: its topic, key, operation and source position (`source.lsn`). The
/// envelope's `ts_ms`/`ts_us`/`ts_ns` say when the connector processed the event, so a record sent
/// again after a restart is not byte for byte the first one. A value that is not such an event is
/// identified by its bytes.
fn change_identity(r: &crate::Input) -> (String, Option<Vec<u8>>, String) {
    let position = r
        .value
        .as_deref()
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .and_then(|v| {
            let payload = v.get("payload").unwrap_or(&v);
            let lsn = payload.get("source")?.get("lsn")?.as_i64()?;
            Some(format!("{} {lsn}", payload.get("op")?.as_str()?))
        });
    let position = position
        .unwrap_or_else(|| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into());
    (r.topic.clone(), r.key.clone(), position)
}

/// How many data records of `records` repeat an earlier one of their topic (same key, operation
/// and source position, see `change_identity`): the connector sending a change again (at least
/// once), not a new change.
pub fn resent_records(records: &[crate::Input]) -> usize {
    let mut seen = std::collections::HashSet::new();
    records
        .iter()
        .filter(|r| r.value.is_some())
        .filter(|r| !seen.insert(change_identity(r)))
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
