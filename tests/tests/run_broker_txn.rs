//! What `decant run`'s exactly-once guarantee needs from the broker, checked directly on the
//! bed's broker: offsets sent into a transaction become the group's committed offsets when it
//! commits (checked), and a read_committed reader never sees records of an aborted transaction
//! — one aborted explicitly, one left open by a producer that died and was fenced by its
//! successor's `init_transactions`.

use std::time::Duration;

use decant_tests::bed::{Broker, consume, random_name};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn producer(bootstrap: &str, txn: &str) -> ThreadedProducer<DefaultProducerContext> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", txn)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("producer");
    p.init_transactions(Duration::from_secs(30)).expect("init");
    p
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, v: &str) {
    p.send(BaseRecord::<str, str>::to(topic).key(v).payload(v))
        .map_err(|(e, _)| e)
        .expect("send");
}

/// Aborts, fences, commits; returns what a read_committed reader sees and the group offset.
fn scenario() -> (Vec<String>, Offset) {
    let broker = Broker::start_retrying();
    let bootstrap = broker.bootstrap();
    let topic = random_name("txn");
    let txn = random_name("tx");
    let group = random_name("g");
    // Create the topic with a plain producer record outside any transaction.
    decant_tests::bed::produce(
        &bootstrap,
        &topic,
        &[(Some(b"seed".as_slice()), Some(b"seed".as_slice()))],
    );
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()
        .expect("consumer");

    let p = producer(&bootstrap, &txn);
    p.begin_transaction().expect("begin");
    send(&p, &topic, "aborted");
    p.flush(Duration::from_secs(10)).expect("flush");
    p.abort_transaction(Duration::from_secs(10)).expect("abort");

    p.begin_transaction().expect("begin");
    send(&p, &topic, "open-then-fenced");
    p.flush(Duration::from_secs(10)).expect("flush");
    drop(p); // dies with the transaction open (librdkafka does not abort on drop)

    let p = producer(&bootstrap, &txn); // fences and aborts the open one
    p.begin_transaction().expect("begin");
    send(&p, &topic, "committed");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(42))
        .expect("tpl");
    let meta = consumer.group_metadata().expect("group metadata");
    p.send_offsets_to_transaction(&offsets, &meta, Duration::from_secs(10))
        .expect("offsets");
    p.commit_transaction(Duration::from_secs(30))
        .expect("commit");

    let got = consume(
        &bootstrap,
        std::slice::from_ref(&topic),
        2,
        Duration::from_secs(3),
    );
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    let committed_offset = committed.elements()[0].offset();
    let positions: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    eprintln!("read_committed sees {values:?} at {positions:?}; group offset {committed_offset:?}");
    (values, committed_offset)
}

#[test]
fn offsets_sent_into_a_transaction_commit_with_it() {
    let (values, committed_offset) = scenario();
    assert_eq!(committed_offset, Offset::Offset(42));
    assert!(values.iter().any(|v| v == "committed"));
}

#[test]
fn read_committed_hides_aborted_and_fenced_transactions() {
    let (mut values, _) = scenario();
    values.sort();
    assert_eq!(
        values,
        ["committed", "seed"],
        "aborted and fenced records stay invisible"
    );
}
