package decant.bed;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.source.SourceRecord;
import org.apache.kafka.connect.storage.Converter;
import org.apache.kafka.connect.storage.HeaderConverter;

import io.debezium.embedded.Connect;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.RecordChangeEvent;
import io.debezium.engine.format.ChangeEventFormat;

/**
 * Runs Debezium's embedded engine and writes every change record to Kafka the way a Kafka Connect
 * worker would: the engine hands over raw Connect {@link SourceRecord}s, which are converted here
 * with the configured key/value/header converters exactly like Connect's WorkerSourceTask does
 * (headers first, then key and value via {@code fromConnectData(topic, headers, schema, value)}),
 * and produced with an idempotent {@code KafkaProducer<byte[], byte[]>} (acks=all). Offsets are
 * handed back to Debezium only after {@code producer.flush()} succeeded for the whole batch.
 *
 * <p>Usage: {@code DbzToKafka <file.properties>}. Every property not starting with {@code runner.}
 * goes to the Debezium engine unchanged. Converter selection follows the Connect worker /
 * Debezium embedded conventions:
 * <ul>
 *   <li>{@code key.converter}, {@code value.converter}, {@code header.converter}: class names
 *       (also accepted as {@code *.converter.class}); defaults: JsonConverter, JsonConverter and
 *       SimpleHeaderConverter (the Connect worker default);</li>
 *   <li>{@code converter.X} applies X to key and value converters, {@code key.converter.X} /
 *       {@code value.converter.X} / {@code header.converter.X} to one of them (they win).</li>
 * </ul>
 * Runner properties: {@code runner.bootstrap.servers} (default 127.0.0.1:19092),
 * {@code runner.partitions} (partitions of topics it creates, default 1),
 * {@code runner.topic.config.X} (topic configs for created topics),
 * {@code runner.producer.X} / {@code runner.admin.X} (extra client configs),
 * {@code runner.stdin} ({@code watch} (default): stop on EOF or a line {@code stop};
 * {@code ignore}: only SIGTERM stops it).
 *
 * <p>stdout protocol: {@code RUNNER STARTED} (connector task started), {@code RUNNER PRODUCED n}
 * (after every flushed batch; n = total records acknowledged), {@code RUNNER SNAPSHOT COMPLETE}
 * (the batch with the last snapshot record is flushed), {@code RUNNER STOPPED n} on a clean stop,
 * {@code RUNNER FAILED <message>} (then exit 1).
 */
public final class DbzToKafka {

    private static final String RUNNER_PREFIX = "runner.";

    private final Properties engineProps = new Properties();
    private final Map<String, String> runnerProps = new HashMap<>();
    private final Converter keyConverter;
    private final Converter valueConverter;
    private final HeaderConverter headerConverter;
    private final KafkaProducer<byte[], byte[]> producer;
    private final Admin admin;
    private final int partitions;
    private final Map<String, String> topicConfigs = new HashMap<>();
    private final Set<String> knownTopics = new HashSet<>();
    private final AtomicLong produced = new AtomicLong();
    private final AtomicBoolean snapshotComplete = new AtomicBoolean();
    private final AtomicBoolean stopRequested = new AtomicBoolean();
    private static final AtomicBoolean SHUTTING_DOWN = new AtomicBoolean();
    private final AtomicReference<String> failure = new AtomicReference<>();
    private final CountDownLatch engineDone = new CountDownLatch(1);
    private final CountDownLatch cleanedUp = new CountDownLatch(1);
    private volatile DebeziumEngine<RecordChangeEvent<SourceRecord>> engine;

    private DbzToKafka(Properties all) throws Exception {
        for (String name : all.stringPropertyNames()) {
            String value = all.getProperty(name);
            if (name.startsWith(RUNNER_PREFIX)) {
                runnerProps.put(name.substring(RUNNER_PREFIX.length()), value);
            }
            else {
                engineProps.setProperty(name, value);
            }
        }
        engineProps.putIfAbsent("name", "decant-bed");
        engineProps.putIfAbsent("offset.storage", "org.apache.kafka.connect.storage.MemoryOffsetBackingStore");
        // commit offsets at every finished batch (the batch is already flushed to Kafka then)
        engineProps.putIfAbsent("offset.flush.interval.ms", "0");

        keyConverter = converter(engineProps, "key");
        valueConverter = converter(engineProps, "value");
        headerConverter = headerConverter(engineProps);

        String bootstrap = runnerProps.getOrDefault("bootstrap.servers", "127.0.0.1:19092");
        partitions = Integer.parseInt(runnerProps.getOrDefault("partitions", "1"));
        for (Map.Entry<String, String> e : runnerProps.entrySet()) {
            if (e.getKey().startsWith("topic.config.")) {
                topicConfigs.put(e.getKey().substring("topic.config.".length()), e.getValue());
            }
        }

        Map<String, Object> pc = new HashMap<>();
        pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pc.put(ProducerConfig.CLIENT_ID_CONFIG, "decant-dbz-runner");
        pc.put(ProducerConfig.ACKS_CONFIG, "all");
        pc.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
        pc.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
        pc.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        pc.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pc.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pc.putAll(prefixed(runnerProps, "producer."));
        producer = new KafkaProducer<>(pc);

        Map<String, Object> ac = new HashMap<>();
        ac.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ac.put(AdminClientConfig.CLIENT_ID_CONFIG, "decant-dbz-runner-admin");
        ac.putAll(prefixed(runnerProps, "admin."));
        admin = Admin.create(ac);
    }

    private static Map<String, Object> prefixed(Map<String, String> props, String prefix) {
        Map<String, Object> out = new HashMap<>();
        props.forEach((k, v) -> {
            if (k.startsWith(prefix)) {
                out.put(k.substring(prefix.length()), v);
            }
        });
        return out;
    }

    /** Converter config like Debezium's embedded engine: converter.* first, then key./value.converter.* win. */
    private static Converter converter(Properties props, String which) throws Exception {
        Map<String, Object> cfg = new HashMap<>();
        String own = which + ".converter.";
        for (String name : props.stringPropertyNames()) {
            if (name.startsWith("converter.")) {
                cfg.put(name.substring("converter.".length()), props.getProperty(name));
            }
        }
        for (String name : props.stringPropertyNames()) {
            if (name.startsWith(own)) {
                cfg.put(name.substring(own.length()), props.getProperty(name));
            }
        }
        Object cls = props.getProperty(which + ".converter", (String) cfg.getOrDefault("class",
                "org.apache.kafka.connect.json.JsonConverter"));
        cfg.remove("class");
        cfg.put("converter.type", which);
        Converter c = (Converter) Class.forName(cls.toString()).getDeclaredConstructor().newInstance();
        c.configure(cfg, which.equals("key"));
        return c;
    }

    private static HeaderConverter headerConverter(Properties props) throws Exception {
        Map<String, Object> cfg = new HashMap<>();
        String own = "header.converter.";
        for (String name : props.stringPropertyNames()) {
            if (name.startsWith(own)) {
                cfg.put(name.substring(own.length()), props.getProperty(name));
            }
        }
        Object cls = props.getProperty("header.converter", (String) cfg.getOrDefault("class",
                "org.apache.kafka.connect.storage.SimpleHeaderConverter"));
        cfg.remove("class");
        cfg.put("converter.type", "header");
        HeaderConverter c = (HeaderConverter) Class.forName(cls.toString()).getDeclaredConstructor().newInstance();
        c.configure(cfg);
        return c;
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private void ensureTopic(String topic) throws InterruptedException {
        if (knownTopics.contains(topic)) {
            return;
        }
        NewTopic nt = new NewTopic(topic, partitions, (short) 1);
        if (!topicConfigs.isEmpty()) {
            nt.configs(topicConfigs);
        }
        try {
            admin.createTopics(List.of(nt)).all().get(60, TimeUnit.SECONDS);
        }
        catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw new RuntimeException("cannot create topic " + topic + ": " + e.getCause(), e.getCause());
            }
        }
        catch (java.util.concurrent.TimeoutException e) {
            throw new RuntimeException("timed out creating topic " + topic, e);
        }
        knownTopics.add(topic);
    }

    private static boolean isLastSnapshotRecord(SourceRecord r) {
        Map<String, ?> offset = r.sourceOffset();
        if (offset != null && Boolean.TRUE.equals(offset.get("last_snapshot_record"))) {
            return true;
        }
        if (r.value() instanceof Struct) {
            Struct v = (Struct) r.value();
            Field f = v.schema().field("source");
            if (f != null && v.get(f) instanceof Struct) {
                Struct src = (Struct) v.get(f);
                if (src.schema().field("snapshot") != null) {
                    return "last".equals(src.get("snapshot"));
                }
            }
        }
        return false;
    }

    private void handleBatch(List<RecordChangeEvent<SourceRecord>> records,
                             DebeziumEngine.RecordCommitter<RecordChangeEvent<SourceRecord>> committer)
            throws InterruptedException {
        List<Future<RecordMetadata>> sent = new ArrayList<>(records.size());
        boolean lastSnapshot = false;
        for (RecordChangeEvent<SourceRecord> event : records) {
            SourceRecord r = event.record();
            String topic = r.topic();
            ensureTopic(topic);
            // same order and calls as Kafka Connect's AbstractWorkerSourceTask.convertTransformedRecord
            RecordHeaders headers = new RecordHeaders();
            for (Header h : r.headers()) {
                headers.add(h.key(), headerConverter.fromConnectHeader(topic, h.key(), h.schema(), h.value()));
            }
            byte[] key = keyConverter.fromConnectData(topic, headers, r.keySchema(), r.key());
            byte[] value = valueConverter.fromConnectData(topic, headers, r.valueSchema(), r.value());
            Long ts = r.timestamp() != null && r.timestamp() >= 0 ? r.timestamp() : null;
            sent.add(producer.send(new ProducerRecord<>(topic, r.kafkaPartition(), ts, key, value, headers)));
            lastSnapshot |= isLastSnapshotRecord(r);
        }
        producer.flush();
        for (Future<RecordMetadata> f : sent) {
            try {
                f.get();
            }
            catch (ExecutionException e) {
                throw new RuntimeException("produce failed: " + e.getCause(), e.getCause());
            }
        }
        for (RecordChangeEvent<SourceRecord> event : records) {
            committer.markProcessed(event);
        }
        committer.markBatchFinished();
        say("RUNNER PRODUCED " + produced.addAndGet(records.size()));
        if (lastSnapshot && snapshotComplete.compareAndSet(false, true)) {
            say("RUNNER SNAPSHOT COMPLETE");
        }
    }

    /** Asks the engine to stop; retries while the engine is still starting its tasks. */
    private void requestStop() {
        if (!stopRequested.compareAndSet(false, true)) {
            return;
        }
        Thread t = new Thread(() -> {
            while (engineDone.getCount() > 0) {
                DebeziumEngine<?> e = engine;
                if (e != null) {
                    try {
                        e.close();
                        return;
                    }
                    catch (IllegalStateException ex) {
                        String m = String.valueOf(ex.getMessage());
                        if (m.contains("already")) {
                            return;
                        }
                        // "Cannot stop engine while tasks are starting": try again shortly
                    }
                    catch (Exception ex) {
                        System.err.println("RUNNER close error: " + ex);
                        return;
                    }
                }
                try {
                    Thread.sleep(200);
                }
                catch (InterruptedException ie) {
                    return;
                }
            }
        }, "runner-stop");
        t.setDaemon(true);
        t.start();
    }

    private int run() throws Exception {
        DebeziumEngine.ChangeConsumer<RecordChangeEvent<SourceRecord>> consumer = this::handleBatch;
        engine = DebeziumEngine.create(ChangeEventFormat.of(Connect.class))
                .using(engineProps)
                .using(new DebeziumEngine.ConnectorCallback() {
                    @Override
                    public void taskStarted() {
                        say("RUNNER STARTED");
                    }
                })
                .using((success, message, error) -> {
                    if (!success || error != null) {
                        StringWriter sw = new StringWriter();
                        if (error != null) {
                            error.printStackTrace(new PrintWriter(sw));
                        }
                        failure.compareAndSet(null, message + (error != null ? ": " + error : ""));
                        System.err.println("RUNNER engine failure: " + message + "\n" + sw);
                    }
                    engineDone.countDown();
                })
                .notifying(consumer)
                .build();

        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            SHUTTING_DOWN.set(true);
            requestStop();
            try {
                cleanedUp.await(60, TimeUnit.SECONDS);
            }
            catch (InterruptedException ignored) {
                // exiting anyway
            }
        }, "runner-shutdown-hook"));

        if (!"ignore".equals(runnerProps.getOrDefault("stdin", "watch"))) {
            Thread stdin = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (line.trim().equals("stop")) {
                            break;
                        }
                    }
                }
                catch (Exception ignored) {
                    // treat like EOF
                }
                requestStop();
            }, "runner-stdin");
            stdin.setDaemon(true);
            stdin.start();
        }

        Thread engineThread = new Thread(engine, "debezium-engine");
        engineThread.start();
        engineDone.await();
        engineThread.join(30_000);

        int code = 0;
        try {
            producer.close(Duration.ofSeconds(30));
        }
        catch (Exception e) {
            failure.compareAndSet(null, "producer close: " + e);
        }
        admin.close(Duration.ofSeconds(5));
        if (failure.get() != null) {
            say("RUNNER FAILED " + failure.get().replace('\n', ' '));
            code = 1;
        }
        else if (!stopRequested.get()) {
            say("RUNNER FAILED engine stopped by itself");
            code = 1;
        }
        else {
            say("RUNNER STOPPED " + produced.get());
        }
        cleanedUp.countDown();
        return code;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: DbzToKafka <debezium+runner.properties>");
            System.exit(2);
        }
        Properties all = new Properties();
        try (var reader = Files.newBufferedReader(Paths.get(args[0]), StandardCharsets.UTF_8)) {
            all.load(reader);
        }
        int code;
        try {
            code = new DbzToKafka(all).run();
        }
        catch (Throwable t) {
            say("RUNNER FAILED " + t);
            t.printStackTrace();
            code = 1;
        }
        // During a SIGTERM shutdown the JVM exits on its own once the hook returns (System.exit
        // would block then).
        if (!SHUTTING_DOWN.get()) {
            System.exit(code);
        }
    }
}
