//! Property maps handed on to a client library (librdkafka's `kafka.client` / `consumer` /
//! `producer`, Iceberg's catalog, table and storage properties). Those libraries take every
//! value as text, while a TOML file says `linger.ms = 50` or `s3.path-style-access = true`: a
//! scalar is taken as its text rather than refused. The library itself then judges the value.
//! (An environment override of such an entry is already text: the binary does not read it as
//! TOML.)

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// `#[serde(deserialize_with = "decant_model::properties::deserialize")]` on a
/// `BTreeMap<String, String>`: strings, integers, floats and booleans, each as its text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, PropertyValue>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
}

struct PropertyValue(String);

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText).map(PropertyValue)
    }
}

struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        // librdkafka's range checks let a NaN through.
        if !v.is_finite() {
            return Err(E::custom(format!("{v} is not a finite number")));
        }
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Section {
        #[serde(default, deserialize_with = "deserialize")]
        props: BTreeMap<String, String>,
    }

    fn props(json: &str) -> Result<BTreeMap<String, String>, serde_json::Error> {
        serde_json::from_str::<Section>(json).map(|s| s.props)
    }

    #[test]
    fn scalars_are_taken_as_their_text() {
        let got = props(
            r#"{"props": {"linger.ms": 50, "s3.path-style-access": true,
                "ratio": 0.5, "offset": -1, "security.protocol": "SASL_SSL"}}"#,
        )
        .expect("scalars");
        let want: BTreeMap<String, String> = [
            ("linger.ms", "50"),
            ("s3.path-style-access", "true"),
            ("ratio", "0.5"),
            ("offset", "-1"),
            ("security.protocol", "SASL_SSL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(got, want);
        assert!(props("{}").expect("absent").is_empty());
    }

    #[test]
    fn lists_and_tables_are_refused() {
        let e = props(r#"{"props": {"bootstrap.servers": ["a", "b"]}}"#).expect_err("a list");
        assert!(e.to_string().contains("a string, number or boolean"), "{e}");
        assert!(props(r#"{"props": {"ssl": {"ca": "x"}}}"#).is_err());
        let nan = toml::from_str::<Section>("[props]\n\"linger.ms\" = nan\n").expect_err("NaN");
        assert!(nan.to_string().contains("not a finite number"), "{nan}");
    }
}
