//! The independent Iceberg reader of the test bed (chdb through `tests/bed/chdb_read.py`) reads
//! exactly the snapshot it is pointed at: a two-append table written by pyiceberg, read at each
//! metadata file (`tests/bed/iceberg_smoke.sh` does the writing and checks both snapshots).

use std::process::Command;

use decant_tests::bed::{Bed, bed_dir};

#[test]
fn chdb_reads_each_snapshot_of_a_pyiceberg_table() {
    let bed = Bed::load();
    let out = Command::new("bash")
        .arg(bed_dir().join("iceberg_smoke.sh"))
        .env("DECANT_CACHE", bed.get("DECANT_CACHE"))
        .output()
        .expect("run iceberg_smoke.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("2 passed, 0 failed"),
        "iceberg smoke failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
