//! Decodes the first N messages of one bench shape, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a busy machine, unlike wall-clock time):
//!   decode_count <products|orders|orders_schema> <N> [passes]
//! Instructions per message = (count at N2 - count at N1) / (N2 - N1).

use decant_benches::{bench_data, declared, load};
use decant_decode::{Decoder, DecoderConfig};
use decant_model::KafkaRecord;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map(String::as_str).unwrap_or("products");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let passes: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let (file, cfg) = match shape {
        "products" => ("products.jsonl", declared("products")),
        "orders" => ("orders.jsonl", declared("orders")),
        _ => ("orders_schema.jsonl", DecoderConfig::default()),
    };
    let msgs = load(&bench_data(), file);
    let mut dec = Decoder::new(cfg).expect("config");
    let mut rows = 0;
    let all = msgs.iter().take(n).cycle().take(n * passes);
    for (i, m) in all.enumerate() {
        let rec = KafkaRecord::value_only("bench", 0, i as i64, m);
        dec.decode(&rec).expect("bench messages decode");
        if dec.pending_rows() >= 8192 {
            rows += dec.take_batches().expect("batches").len();
        }
    }
    rows += dec.take_batches().expect("batches").len();
    println!("{shape}: {n} messages x {passes}, {rows} batches");
}
