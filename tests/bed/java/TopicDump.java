package decant.bed;

import java.io.BufferedWriter;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Dumps Kafka topics from the beginning as JSON lines in the format of {@code kcat -C -J}:
 * <pre>{"topic":"t","partition":0,"offset":0,"tstype":"create","ts":1700000000000,"broker":-1,
 *  "headers":["k","v"],"key":"…","payload":"…"}</pre>
 * {@code headers} only when the record has headers (like kcat), {@code key}/{@code payload} are the
 * UTF-8 text of the bytes or null. Bytes that are not valid UTF-8 are written as {@code key_b64} /
 * {@code payload_b64} (standard base64) instead; a header value that is not valid UTF-8 is written
 * base64-encoded and its index in the headers array is listed in {@code headers_b64}. Strings are
 * escaped like kcat's yajl: {@code \" \\ \b \f \n \r \t}, other controls as backslash-u00XX (upper-case hex).
 * Output is sorted by (topic, partition, offset). Reads with isolation.level=read_committed.
 *
 * <pre>
 * TopicDump [--bootstrap HOST:PORT] (--topic T ... | --regex RE) [--out FILE]
 *           [--follow-secs N] [--timeout-secs N] [--list]
 * </pre>
 * Without --follow-secs it stops when the end offsets seen at start are reached; with it, it also
 * keeps reading until no record arrived for N seconds. --list prints the matching topic names.
 * Exit codes: 0 ok, 2 usage, 3 an explicitly named topic does not exist, 4 timeout.
 */
public final class TopicDump {

    private static void usage(String msg) {
        System.err.println("TopicDump: " + msg);
        System.err.println("usage: TopicDump [--bootstrap HOST:PORT] (--topic T ... | --regex RE) [--out FILE] "
                + "[--follow-secs N] [--timeout-secs N] [--list]");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = System.getenv().getOrDefault("DECANT_BOOTSTRAP", "127.0.0.1:19092");
        List<String> topics = new ArrayList<>();
        String regex = null;
        String out = null;
        int followSecs = 0;
        int timeoutSecs = 120;
        boolean list = false;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--list")) {
                list = true;
                continue;
            }
            if (i + 1 >= args.length) {
                usage("missing value for " + a);
            }
            String v = args[++i];
            switch (a) {
                case "--bootstrap": bootstrap = v; break;
                case "--topic": topics.add(v); break;
                case "--regex": regex = v; break;
                case "--out": out = v; break;
                case "--follow-secs": followSecs = Integer.parseInt(v); break;
                case "--timeout-secs": timeoutSecs = Integer.parseInt(v); break;
                default: usage("unknown argument " + a);
            }
        }
        if (topics.isEmpty() && regex == null) {
            usage("need --topic or --regex");
        }

        Map<String, Object> ac = new HashMap<>();
        ac.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ac.put(AdminClientConfig.CLIENT_ID_CONFIG, "decant-topic-dump-admin");
        List<TopicPartition> tps = new ArrayList<>();
        Set<String> selected = new TreeSet<>();
        try (Admin admin = Admin.create(ac)) {
            Set<String> existing = admin.listTopics().names().get(60, TimeUnit.SECONDS);
            for (String t : topics) {
                if (!existing.contains(t)) {
                    System.err.println("TopicDump: no such topic: " + t);
                    System.exit(3);
                }
                selected.add(t);
            }
            if (regex != null) {
                Pattern p = Pattern.compile(regex);
                for (String t : existing) {
                    if (p.matcher(t).matches()) {
                        selected.add(t);
                    }
                }
            }
            if (list) {
                selected.forEach(System.out::println);
                return;
            }
            if (!selected.isEmpty()) {
                Map<String, TopicDescription> desc = admin.describeTopics(selected).allTopicNames().get(60, TimeUnit.SECONDS);
                for (String t : selected) {
                    for (TopicPartitionInfo pi : desc.get(t).partitions()) {
                        tps.add(new TopicPartition(t, pi.partition()));
                    }
                }
            }
        }

        List<ConsumerRecord<byte[], byte[]>> records = new ArrayList<>();
        if (!tps.isEmpty()) {
            Map<String, Object> cc = new HashMap<>();
            cc.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cc.put(ConsumerConfig.CLIENT_ID_CONFIG, "decant-topic-dump");
            cc.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            cc.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
            cc.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cc.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            cc.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cc)) {
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
                Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(60));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSecs);
                long lastRecord = System.nanoTime();
                while (true) {
                    var batch = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<byte[], byte[]> r : batch) {
                        records.add(r);
                    }
                    if (!batch.isEmpty()) {
                        lastRecord = System.nanoTime();
                    }
                    boolean atEnd = true;
                    for (TopicPartition tp : tps) {
                        if (consumer.position(tp) < end.get(tp)) {
                            atEnd = false;
                            break;
                        }
                    }
                    boolean idle = System.nanoTime() - lastRecord >= TimeUnit.SECONDS.toNanos(followSecs);
                    if (atEnd && (followSecs == 0 || idle)) {
                        break;
                    }
                    if (System.nanoTime() > deadline && !(atEnd && followSecs > 0)) {
                        System.err.println("TopicDump: timed out after " + timeoutSecs + "s before reaching end offsets " + end);
                        write(records, out);
                        System.exit(4);
                    }
                }
            }
        }
        write(records, out);
    }

    private static void write(List<ConsumerRecord<byte[], byte[]>> records, String out) throws Exception {
        records.sort(Comparator.<ConsumerRecord<byte[], byte[]>, String>comparing(ConsumerRecord::topic)
                .thenComparingInt(ConsumerRecord::partition)
                .thenComparingLong(ConsumerRecord::offset));
        Writer w = out == null
                ? new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8))
                : Files.newBufferedWriter(Paths.get(out), StandardCharsets.UTF_8);
        StringBuilder sb = new StringBuilder();
        for (ConsumerRecord<byte[], byte[]> r : records) {
            sb.setLength(0);
            sb.append("{\"topic\":");
            str(sb, r.topic());
            sb.append(",\"partition\":").append(r.partition());
            sb.append(",\"offset\":").append(r.offset());
            if (r.timestampType() != TimestampType.NO_TIMESTAMP_TYPE) {
                sb.append(",\"tstype\":\"").append(r.timestampType() == TimestampType.CREATE_TIME ? "create" : "logappend").append('"');
                sb.append(",\"ts\":").append(r.timestamp());
            }
            sb.append(",\"broker\":-1");
            Header[] hs = r.headers().toArray();
            if (hs.length > 0) {
                List<Integer> b64 = new ArrayList<>();
                sb.append(",\"headers\":[");
                for (int i = 0; i < hs.length; i++) {
                    if (i > 0) {
                        sb.append(',');
                    }
                    str(sb, hs[i].key());
                    sb.append(',');
                    byte[] v = hs[i].value();
                    if (v == null) {
                        sb.append("null");
                    }
                    else {
                        String s = utf8(v);
                        if (s == null) {
                            b64.add(i);
                            str(sb, Base64.getEncoder().encodeToString(v));
                        }
                        else {
                            str(sb, s);
                        }
                    }
                }
                sb.append(']');
                if (!b64.isEmpty()) {
                    sb.append(",\"headers_b64\":").append(b64.toString().replace(" ", ""));
                }
            }
            bytesField(sb, "key", r.key());
            bytesField(sb, "payload", r.value());
            sb.append("}\n");
            w.write(sb.toString());
        }
        w.flush();
        if (out != null) {
            w.close();
        }
    }

    private static void bytesField(StringBuilder sb, String name, byte[] v) {
        if (v == null) {
            sb.append(",\"").append(name).append("\":null");
            return;
        }
        String s = utf8(v);
        if (s == null) {
            sb.append(",\"").append(name).append("_b64\":");
            str(sb, Base64.getEncoder().encodeToString(v));
        }
        else {
            sb.append(",\"").append(name).append("\":");
            str(sb, s);
        }
    }

    /** Strict UTF-8 decoding; null when the bytes are not valid UTF-8. */
    private static String utf8(byte[] v) {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(v)).toString();
        }
        catch (CharacterCodingException e) {
            return null;
        }
    }

    /** JSON string with yajl's escaping (what kcat prints). */
    private static void str(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\b': sb.append("\\b"); break;
                case '\f': sb.append("\\f"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u00%02X", (int) c));
                    }
                    else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }
}
