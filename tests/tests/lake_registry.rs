//! The Iceberg sink fed by Schema-Registry-framed Avro: the real AvroConverter capture of the
//! bed's PostgreSQL workload (`tests/fixtures/registry/avro`), its schemas served by the bed's
//! registry, into Iceberg tables read back by chdb, equal to PostgreSQL's final state.

use std::time::Duration;

use decant_tests::bed::{Bed, Broker, DecantProcess, random_name, write_decant_config};
use decant_tests::lake::{Catalog, assert_lake_equals_pg, lake_settled};
use decant_tests::registry::{framed_capture, produce_capture};
use decant_tests::workload::metric;

#[test]
fn avro_through_the_registry_into_iceberg_equals_postgres() {
    let bed = Bed::load();
    let (registry, framed, expected) = framed_capture("avro");
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let prefix = random_name("src");
    produce_capture(&bootstrap, &prefix, &framed);

    let work = std::env::temp_dir().join(random_name("decant-lake-registry"));
    let catalog = Catalog::sqlite(&work);
    let extra = format!(
        "[schema_registry]\nurl = \"{}\"\n{}",
        registry.url(),
        catalog.config("")
    );
    let (config, port) = write_decant_config(&work, &bootstrap, &prefix, "unused", &extra);
    let env = [("DECANT_OUTPUT__TYPE", "iceberg")];
    let mut decant = DecantProcess::start(&config, &work.join("decant.log"), &env);
    let tables = lake_settled(&bed, &catalog, &mut decant);
    assert_eq!(
        tables.len(),
        5,
        "one Iceberg table per captured table: {:?}",
        tables.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    assert_lake_equals_pg("registry avro into Iceberg", &bed, &tables, &expected, None);
    assert!(
        metric(port, "decant_decode_errors_total").is_none(),
        "every Avro record decodes: {}",
        decant.log_tail(20)
    );
    let status = decant.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&work);
}
