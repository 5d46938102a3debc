//! The JSON scanner against serde_json as the reference: it must never panic, and when it
//! accepts a document so must serde_json (decant may reject more, e.g. depth; never accept junk).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(v) = decant_decode::json::parse(text) {
        // NaN/Infinity are decant's deliberate extensions; everything else must be JSON.
        if !text.contains("NaN") && !text.contains("Infinity") {
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(), "accepted invalid JSON: {text:?}");
        }
        if let Some(m) = v.members() {
            for e in m.flatten() {
                let _ = e.1.as_str();
                let _ = e.1.as_i64();
            }
        }
    }
});
