//! The broker behaviours decant relies on, checked against the bed's broker (Apache Kafka, KRaft)
//! with librdkafka: compacted topics created through the admin API, idempotent produce,
//! consumer-group joins, transactions (commit, abort hidden from read_committed readers even when
//! its records reached the broker, consumer offsets sent inside the transaction), and data that
//! survives a broker restart.

use std::time::Duration;

use decant_tests::bed::{Broker, consume, random_name, wait_for};
use futures::executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(20);

fn admin(b: &Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin client")
}

fn create_topic(b: &Broker, name: &str, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = block_on(admin(b).create_topics([&topic], &AdminOptions::new())).expect("create");
    for r in res {
        r.expect("topic created");
    }
}

fn producer(b: &Broker, extra: &[(&str, &str)]) -> ThreadedProducer<DefaultProducerContext> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", b.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

fn send(p: &ThreadedProducer<DefaultProducerContext>, topic: &str, key: &str, value: Option<&str>) {
    let mut r = BaseRecord::to(topic).key(key);
    if let Some(v) = value {
        r = r.payload(v);
    }
    p.send(r).map_err(|(e, _)| e).expect("send");
}

fn values(b: &Broker, topic: &str, at_least: usize) -> Vec<Option<String>> {
    consume(
        &b.bootstrap(),
        &[topic.to_owned()],
        at_least,
        Duration::from_secs(2),
    )
    .into_iter()
    .map(|i| i.value.map(|v| String::from_utf8_lossy(&v).into_owned()))
    .collect()
}

#[test]
fn compacted_topics_and_idempotent_produce_with_tombstones() {
    let b = Broker::start();
    let topic = random_name("compacted");
    create_topic(&b, &topic, &[("cleanup.policy", "compact")]);
    let described = block_on(
        admin(&b).describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new()),
    )
    .expect("describe");
    let policy = described[0]
        .as_ref()
        .expect("config")
        .get("cleanup.policy")
        .and_then(|e| e.value.clone());
    assert_eq!(policy.as_deref(), Some("compact"));

    let p = producer(&b, &[]);
    send(&p, &topic, "k1", Some("v1"));
    send(&p, &topic, "k2", Some("v2"));
    send(&p, &topic, "k1", None);
    p.flush(T).expect("flush");
    assert_eq!(
        values(&b, &topic, 3),
        vec![Some("v1".into()), Some("v2".into()), None],
        "order kept, tombstone delivered as a null value"
    );
}

#[test]
fn consumer_group_subscription_receives_records() {
    let b = Broker::start();
    let topic = random_name("grouped");
    create_topic(&b, &topic, &[]);
    let p = producer(&b, &[]);
    send(&p, &topic, "k", Some("hello"));
    p.flush(T).expect("flush");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", random_name("group"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    c.subscribe(&[&topic]).expect("subscribe");
    let got = wait_for(
        Duration::from_secs(90),
        "a group member to be assigned and read",
        || {
            c.poll(Duration::from_millis(500))
                .and_then(Result::ok)
                .map(|m| m.payload().map(<[u8]>::to_vec))
        },
    );
    assert_eq!(got.as_deref(), Some(&b"hello"[..]));
}

#[test]
fn transactions_commit_abort_and_send_offsets() {
    let b = Broker::start();
    let (source, out) = (random_name("src"), random_name("out"));
    create_topic(&b, &source, &[]);
    create_topic(&b, &out, &[]);
    let group = random_name("txgroup");
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // A long linger keeps records in the client until commit flushes them, so an abort discards
    // them before they reach the broker (the next test covers records that did reach it).
    let tx = producer(
        &b,
        &[
            ("transactional.id", &random_name("txid")),
            ("linger.ms", "10000"),
        ],
    );
    tx.init_transactions(T).expect("init_transactions");

    tx.begin_transaction().expect("begin");
    for i in 0..3 {
        send(&tx, &out, "k", Some(&format!("committed-{i}")));
    }
    tx.commit_transaction(T).expect("commit");

    tx.begin_transaction().expect("begin");
    send(&tx, &out, "k", Some("aborted-0"));
    send(&tx, &out, "k", Some("aborted-1"));
    tx.abort_transaction(T).expect("abort");

    tx.begin_transaction().expect("begin");
    send(&tx, &out, "k", Some("with-offsets"));
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&source, 0, Offset::Offset(42))
        .expect("tpl");
    let meta = c.group_metadata().expect("group metadata");
    tx.send_offsets_to_transaction(&offsets, &meta, T)
        .expect("send_offsets_to_transaction");
    tx.commit_transaction(T).expect("commit");

    let seen = values(&b, &out, 4);
    assert_eq!(
        seen,
        vec![
            Some("committed-0".into()),
            Some("committed-1".into()),
            Some("committed-2".into()),
            Some("with-offsets".into())
        ],
        "aborted records never show"
    );
    let mut ask = TopicPartitionList::new();
    ask.add_partition(&source, 0);
    let committed = c.committed_offsets(ask, T).expect("committed offsets");
    assert_eq!(
        committed.find_partition(&source, 0).map(|e| e.offset()),
        Some(Offset::Offset(42)),
        "offsets sent inside the transaction are the group's committed offsets"
    );
}

#[test]
fn broker_keeps_records_across_restart() {
    let b = Broker::start();
    let topic = random_name("durable");
    create_topic(&b, &topic, &[("cleanup.policy", "compact")]);
    let p = producer(&b, &[]);
    for i in 0..5 {
        send(&p, &topic, &format!("k{i}"), Some(&format!("v{i}")));
    }
    p.flush(T).expect("flush");
    drop(p);
    assert_eq!(values(&b, &topic, 5).len(), 5);
    b.restart();
    let after = values(&b, &topic, 5);
    assert_eq!(
        after,
        (0..5).map(|i| Some(format!("v{i}"))).collect::<Vec<_>>(),
        "records survive a broker restart"
    );
}

/// Records that reached the broker before their transaction aborted stay invisible to
/// read_committed readers: the broker's abort marker and aborted-transaction index hide them. The
/// exactly-once tests judge decant by exactly this, so the bed proves it first.
#[test]
fn aborted_records_flushed_before_abort_are_hidden() {
    let b = Broker::start();
    let out = random_name("out");
    create_topic(&b, &out, &[]);
    let tx = producer(&b, &[("transactional.id", &random_name("txid"))]);
    tx.init_transactions(T).expect("init_transactions");
    tx.begin_transaction().expect("begin");
    send(&tx, &out, "k", Some("aborted"));
    tx.flush(T).expect("flush");
    tx.abort_transaction(T).expect("abort");
    tx.begin_transaction().expect("begin");
    send(&tx, &out, "k", Some("committed"));
    tx.commit_transaction(T).expect("commit");
    assert_eq!(values(&b, &out, 1), vec![Some("committed".into())]);
}
