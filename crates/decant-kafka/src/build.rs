//! What this build of librdkafka can do: its version and `builtin.features`.

use rdkafka::ClientConfig;
use rdkafka::producer::BaseProducer;

use crate::quiet::Quiet;

/// librdkafka's version and compiled-in features (for `decant version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. `2.12.1`.
    pub librdkafka_version: String,
    /// librdkafka's `builtin.features`, e.g. `gzip`, `ssl`, `sasl_scram`, `zstd`, `oidc`.
    pub features: Vec<String>,
}

impl BuildInfo {
    /// Asks the linked librdkafka (no client is created).
    pub fn get() -> BuildInfo {
        let (_, version) = rdkafka::util::get_rdkafka_version();
        let mut features: Vec<String> = ClientConfig::new()
            .create_native_config()
            .and_then(|c| c.get("builtin.features"))
            .unwrap_or_default()
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        // librdkafka's CMake build lists `sasl_gssapi` without cyrus-sasl (it tests
        // `defined(WITH_SASL_CYRUS)`, which is defined as 0): ask for a GSSAPI client to know.
        if features.iter().any(|f| f == "sasl_gssapi") && !gssapi_works() {
            features.retain(|f| f != "sasl_gssapi");
        }
        BuildInfo {
            librdkafka_version: version,
            features,
        }
    }

    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

/// Whether librdkafka can build a GSSAPI client (no broker is configured, nothing is
/// contacted; periodic kinit is turned off).
fn gssapi_works() -> bool {
    ClientConfig::new()
        .set("security.protocol", "sasl_plaintext")
        .set("sasl.mechanism", "GSSAPI")
        .set("sasl.kerberos.min.time.before.relogin", "0")
        .set_log_level(rdkafka::config::RDKafkaLogLevel::Emerg)
        .create_with_context::<_, BaseProducer<Quiet>>(Quiet)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The features decant promises (README "Connecting to your cluster"); GSSAPI is not one.
    #[test]
    fn tls_sasl_oidc_and_every_codec_are_built_in() {
        let b = BuildInfo::get();
        for f in [
            "ssl",
            "sasl_plain",
            "sasl_scram",
            "sasl_oauthbearer",
            "oidc",
            "gzip",
            "snappy",
            "lz4",
            "zstd",
        ] {
            assert!(b.has(f), "{f} missing from {:?}", b.features);
        }
        assert!(b.librdkafka_version.starts_with("2."), "{b:?}");
        assert!(!b.has("sasl_gssapi"), "no Kerberos in this build: {b:?}");
    }
}
