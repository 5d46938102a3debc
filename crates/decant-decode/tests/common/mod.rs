//! Shared by the tests that hold a decoder's fast paths to its general path.

use decant_decode::render::render_in_order;
use decant_decode::{Decoder, Outcome};
use decant_model::KafkaRecord;

/// Decodes `msg` and renders everything the outcome carries: the error text, or the outcome
/// with its table, the rendered rows, their unchanged-column lists and their positions.
pub fn outcome(dec: &mut Decoder, msg: &str) -> String {
    let rec = KafkaRecord::value_only("s.public.t", 0, 7, msg.as_bytes());
    match dec.decode(&rec) {
        Err(e) => format!("error: {e}"),
        Ok(o) => {
            let batches = dec.take_batches().expect("batches");
            let mut out = String::new();
            render_in_order(&batches, &[], &mut out);
            let rows = batches
                .iter()
                .flat_map(|b| (0..b.len()).map(move |r| (b, r)));
            let unchanged: Vec<_> = rows
                .clone()
                .map(|(b, r)| format!("{:?}", b.unchanged(r)))
                .collect();
            let positions: Vec<_> = rows
                .map(|(b, r)| format!("{:?}", b.meta[r].position))
                .collect();
            let what = match o {
                Outcome::Row { table, kind } => format!("row {table} {kind:?}"),
                // `seq` counts the decoder's records, which differ between decoders.
                Outcome::Control(c) => format!(
                    "control {:?} {:?} {:?} {:?}",
                    c.table, c.event, c.position, c.key
                ),
            };
            format!("{what} {out} unchanged={unchanged:?} positions={positions:?}")
        }
    }
}

/// How a generated object is laid out: as listed, or perturbed in a way a plan must notice.
#[derive(Debug, Clone)]
pub enum Layout {
    InOrder,
    /// The member at this index (modulo the count) trades places with the next.
    Swapped(usize),
    Dropped(usize),
    Duplicated(usize),
    /// A member nobody expects at the end.
    Extra,
    /// Spaces around members and commas.
    Spaces,
    /// Not an object at all (`null`).
    NotAnObject,
}

/// The JSON object of `members` (name, raw value) laid out as `layout` says.
pub fn object<N: AsRef<str>>(members: &[(N, String)], layout: &Layout) -> String {
    let mut parts: Vec<String> = members
        .iter()
        .map(|(n, v)| format!("\"{}\":{v}", n.as_ref()))
        .collect();
    let n = parts.len();
    match *layout {
        Layout::InOrder => {}
        Layout::Swapped(i) => parts.swap(i % (n - 1), i % (n - 1) + 1),
        Layout::Dropped(i) => {
            parts.remove(i % n);
        }
        Layout::Duplicated(i) => {
            let m = parts[i % n].clone();
            parts.insert(i % n, m);
        }
        Layout::Extra => parts.push("\"surprise\":1".into()),
        Layout::Spaces => return format!("{{ {} }}", parts.join(" , ")),
        Layout::NotAnObject => return "null".into(),
    }
    format!("{{{}}}", parts.join(","))
}
