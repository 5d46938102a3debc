import io.confluent.connect.avro.AvroConverter;
import io.confluent.connect.protobuf.ProtobufConverter;
import io.confluent.kafka.schemaregistry.ParsedSchema;
import io.confluent.kafka.schemaregistry.client.SchemaRegistryClient;
import io.confluent.kafka.schemaregistry.avro.AvroSchemaProvider;
import io.confluent.kafka.schemaregistry.client.MockSchemaRegistryClient;
import io.confluent.kafka.schemaregistry.protobuf.ProtobufSchemaProvider;
import java.io.BufferedReader;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.storage.Converter;

/**
 * Re-encodes a Debezium capture written by Connect's JsonConverter (schemas enabled, one value
 * per line) with Confluent's own AvroConverter or ProtobufConverter, the way a connector
 * configured with them would have written it. The converters register into Confluent's in-process
 * MockSchemaRegistryClient, so no server is needed.
 *
 * <p>usage: ConvertShape avro|protobuf IN.jsonl OUT_MESSAGES OUT_SCHEMAS TOPIC
 *
 * <p>OUT_MESSAGES: one base64 framed value per line. OUT_SCHEMAS: one line per registered id,
 * {"id":N,"schemaType":"AVRO"|"PROTOBUF","schema":"..."} (the schema's canonical text).
 */
public final class ConvertShape {
  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: ConvertShape avro|protobuf IN.jsonl OUT_MESSAGES OUT_SCHEMAS TOPIC");
      System.exit(2);
    }
    String format = args[0];
    String topic = args[4];
    SchemaRegistryClient registry =
        new MockSchemaRegistryClient(
            List.of(new AvroSchemaProvider(), new ProtobufSchemaProvider()));
    JsonConverter json = new JsonConverter();
    json.configure(Map.of("schemas.enable", "true"), false);
    Converter out;
    switch (format) {
      case "avro" -> out = new AvroConverter(registry);
      case "protobuf" -> out = new ProtobufConverter(registry);
      default -> throw new IllegalArgumentException("format must be avro or protobuf: " + format);
    }
    // The URL is never contacted: the converter uses the client it was built with.
    out.configure(Map.of("schema.registry.url", "http://unused.invalid"), false);
    TreeSet<Integer> ids = new TreeSet<>();
    Base64.Encoder b64 = Base64.getEncoder();
    try (BufferedReader in = Files.newBufferedReader(Path.of(args[1]), StandardCharsets.UTF_8);
        PrintWriter messages = new PrintWriter(Files.newBufferedWriter(Path.of(args[2])))) {
      String line;
      while ((line = in.readLine()) != null) {
        if (line.isBlank()) {
          continue;
        }
        SchemaAndValue sv = json.toConnectData(topic, line.getBytes(StandardCharsets.UTF_8));
        byte[] framed = out.fromConnectData(topic, sv.schema(), sv.value());
        ids.add(ByteBuffer.wrap(framed, 1, 4).getInt());
        messages.println(b64.encodeToString(framed));
      }
    }
    try (PrintWriter schemas = new PrintWriter(Files.newBufferedWriter(Path.of(args[3])))) {
      for (int id : ids) {
        ParsedSchema schema = registry.getSchemaById(id);
        schemas.println(
            "{\"id\":" + id + ",\"schemaType\":\"" + schema.schemaType() + "\",\"schema\":"
                + quote(schema.canonicalString()) + "}");
      }
    }
  }

  /** A JSON string literal. */
  private static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
