//! The client against a real registry: the test bed's (Apicurio Registry through its
//! Confluent-compatible API). Set `DECANT_REGISTRY_URL` to its URL, e.g.
//!
//! ```sh
//! URL=$(tests/bed/registry.sh start --port 18081)   # http://127.0.0.1:18081/apis/ccompat/v7
//! DECANT_REGISTRY_URL=$URL cargo test -p decant-registry --test bed_registry
//! ```
//!
//! Without it every test here prints why it is skipped and passes. Subjects are random, so tests
//! can share one registry and run in parallel.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use decant_decode::{SchemaFormat, SchemaResolver};
use decant_model::RetryClass;
use decant_registry::{
    Compatibility, RegistryClient, RegistryConfig, RegistryError, Schema, SchemaReference,
    SchemaType, Version,
};

const ENV: &str = "DECANT_REGISTRY_URL";

fn registry() -> Option<RegistryClient> {
    let Ok(url) = std::env::var(ENV) else {
        eprintln!(
            "skipped: {ENV} is not set (start a registry with tests/bed/registry.sh start and set {ENV} to the URL it prints)"
        );
        return None;
    };
    Some(RegistryClient::new(&RegistryConfig::new(url)).expect("client"))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn record(name: &str, fields: &str) -> Schema {
    Schema::avro(format!(
        r#"{{"type":"record","name":"{name}","namespace":"decant.test","fields":[{fields}]}}"#
    ))
}

#[test]
fn avro_register_fetch_lookup_versions() {
    let Some(r) = registry() else { return };
    let subject = unique("decant-avro") + "-value";
    let v1 = record("Row", r#"{"name":"id","type":"int"}"#);
    let id1 = r.register(&subject, &v1).expect("register v1");
    assert_eq!(r.register(&subject, &v1).expect("again"), id1, "idempotent");
    let got = r.schema_by_id(id1).expect("by id");
    assert_eq!(got.schema_type, SchemaType::Avro);
    assert!(got.text.contains("\"Row\""));

    // backward compatible (a field with a default), then incompatible (a type change)
    let v2 = record(
        "Row",
        r#"{"name":"id","type":"int"},{"name":"note","type":["null","string"],"default":null}"#,
    );
    assert!(
        r.check_compatibility(&subject, Version::Latest, &v2)
            .expect("check")
            .is_compatible
    );
    let id2 = r.register(&subject, &v2).expect("register v2");
    assert_ne!(id1, id2);
    let bad = record("Row", r#"{"name":"id","type":"string"}"#);
    r.set_compatibility(Some(&subject), Compatibility::Backward)
        .expect("set level");
    assert_eq!(
        r.compatibility(Some(&subject)).expect("level"),
        Compatibility::Backward
    );
    let check = r
        .check_compatibility(&subject, Version::Latest, &bad)
        .expect("check");
    assert!(!check.is_compatible);
    let e = r.register(&subject, &bad).expect_err("incompatible");
    assert_eq!(e.status(), Some(409), "{e}");
    assert_eq!(e.retry_class(), RetryClass::Fatal);

    assert_eq!(r.versions(&subject).expect("versions"), vec![1, 2]);
    let latest = r.version(&subject, Version::Latest).expect("latest");
    assert_eq!((latest.version, latest.id), (2, id2));
    let first = r.version(&subject, Version::Number(1)).expect("v1");
    assert_eq!(first.id, id1);
    let found = r.lookup(&subject, &v1).expect("lookup");
    assert_eq!((found.version, found.id), (1, id1));
    let uses = r.subject_versions_of_id(id2).expect("versions of id");
    assert!(
        uses.iter().any(|u| u.subject == subject && u.version == 2),
        "{uses:?}"
    );
    assert!(r.subjects().expect("subjects").contains(&subject));

    let resolved = r.resolve(id2).expect("resolver");
    assert_eq!(resolved.format, SchemaFormat::Avro);
    apache_avro::Schema::parse_str(&resolved.text).expect("Avro");

    assert_eq!(
        r.delete_subject(&subject, false).expect("delete"),
        vec![1, 2]
    );
    assert!(!r.subjects().expect("subjects").contains(&subject));
    let e = r.versions(&subject).expect_err("gone");
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn json_schema_and_protobuf() {
    let Some(r) = registry() else { return };
    let json = Schema::new(
        SchemaType::Json,
        r#"{"type":"object","title":"decant.Row","properties":{"id":{"type":"integer","connect.type":"int32"}}}"#,
    );
    let subject = unique("decant-json") + "-value";
    let id = r.register(&subject, &json).expect("register JSON");
    let got = r.schema_by_id(id).expect("by id");
    assert_eq!(got.schema_type, SchemaType::Json);
    assert_eq!(r.resolve(id).expect("resolve").format, SchemaFormat::Json);

    let proto = Schema::new(
        SchemaType::Protobuf,
        "syntax = \"proto3\";\npackage decant.test;\n\nmessage Row {\n  int32 id = 1;\n  string label = 2;\n}\n",
    );
    let subject = unique("decant-proto") + "-value";
    let id = r.register(&subject, &proto).expect("register Protobuf");
    let got = r.schema_by_id(id).expect("by id");
    assert_eq!(got.schema_type, SchemaType::Protobuf);
    assert!(got.text.contains("message Row"), "{}", got.text);
    assert_eq!(
        r.resolve(id).expect("resolve").format,
        SchemaFormat::Protobuf
    );
}

#[test]
fn avro_references_resolve_to_one_schema() {
    let Some(r) = registry() else { return };
    let ns = unique("ref").replace('-', "_");
    let address = Schema::avro(format!(
        r#"{{"type":"record","name":"Address","namespace":"{ns}","fields":[{{"name":"street","type":"string"}}]}}"#
    ));
    let addr_subject = unique("decant-address");
    r.register(&addr_subject, &address)
        .expect("register the referenced schema");
    let order = Schema::avro(format!(
        r#"{{"type":"record","name":"Order","namespace":"{ns}","fields":[{{"name":"ship","type":"{ns}.Address"}},{{"name":"bill","type":["null","{ns}.Address"],"default":null}}]}}"#
    ))
    .with_references(vec![SchemaReference {
        name: format!("{ns}.Address"),
        subject: addr_subject.clone(),
        version: 1,
    }]);
    let subject = unique("decant-order") + "-value";
    let id = r
        .register(&subject, &order)
        .expect("register with a reference");
    let got = r.schema_by_id(id).expect("by id");
    assert_eq!(got.references.len(), 1, "{got:?}");
    let resolved = r.resolve(id).expect("resolve");
    let parsed = apache_avro::Schema::parse_str(&resolved.text).expect("self-contained Avro");
    assert!(format!("{parsed:?}").contains("street"));
}

/// A Protobuf schema importing a `.proto` registered under another subject (which imports a
/// third): the resolver hands the decoder both imports, each once, imports before importers.
#[test]
fn protobuf_references_reach_the_decoder() {
    let Some(r) = registry() else { return };
    let pkg = unique("refs").replace('-', "_");
    let money_name = format!("{pkg}/money.proto");
    let money = Schema::new(
        SchemaType::Protobuf,
        format!(
            "syntax = \"proto3\";\npackage {pkg};\n\nmessage Money {{\n  string currency = 1;\n  int64 cents = 2;\n}}\n"
        ),
    );
    let money_subject = unique("decant-money");
    r.register(&money_subject, &money)
        .expect("register money.proto");
    let line_name = format!("{pkg}/line.proto");
    let line = Schema::new(
        SchemaType::Protobuf,
        format!("syntax = \"proto3\";\npackage {pkg};\n\nimport \"{money_name}\";\n\nmessage Line {{\n  string sku = 1;\n  Money price = 2;\n}}\n"),
    )
    .with_references(vec![SchemaReference {
        name: money_name.clone(),
        subject: money_subject.clone(),
        version: 1,
    }]);
    let line_subject = unique("decant-line");
    r.register(&line_subject, &line)
        .expect("register line.proto");
    let order = Schema::new(
        SchemaType::Protobuf,
        format!("syntax = \"proto3\";\npackage {pkg};\n\nimport \"{line_name}\";\n\nmessage Order {{\n  int32 id = 1;\n  Line line = 2;\n}}\n"),
    )
    .with_references(vec![SchemaReference {
        name: line_name.clone(),
        subject: line_subject,
        version: 1,
    }]);
    let id = r
        .register(&(unique("decant-order") + "-value"), &order)
        .expect("register with a reference");
    let refs = r.references(id).expect("references");
    let names: Vec<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [money_name.as_str(), line_name.as_str()],
        "imports before importers"
    );
    assert!(refs.iter().all(|(_, s)| s.format == SchemaFormat::Protobuf));
    assert!(
        refs[0].1.text.contains("message Money"),
        "{}",
        refs[0].1.text
    );
}

#[test]
fn unknown_ids_and_subjects_are_not_found_and_not_retriable() {
    let Some(r) = registry() else { return };
    let e = r.schema_by_id(2_000_000_000).expect_err("no such id");
    assert!(e.is_not_found(), "{e}");
    assert!(
        matches!(
            e,
            RegistryError::Http {
                code: Some(40403),
                ..
            }
        ),
        "{e}"
    );
    let res = r.resolve(2_000_000_000).expect_err("resolver");
    assert!(!res.retriable);
    let e = r
        .version(&unique("decant-none"), Version::Latest)
        .expect_err("no such subject");
    assert!(
        matches!(
            e,
            RegistryError::Http {
                code: Some(40401),
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn a_stopped_registry_is_retriable_and_bounded() {
    if std::env::var(ENV).is_err() {
        eprintln!("skipped: {ENV} is not set");
        return;
    }
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/apis/ccompat/v7",
        dead.local_addr().expect("addr")
    );
    drop(dead);
    let mut c = RegistryConfig::new(url);
    c.max_retries = 2;
    c.retry_backoff_ms = 50;
    let r = RegistryClient::new(&c).expect("client");
    let t = Instant::now();
    let e = r.resolve(1).expect_err("nobody listens");
    assert!(e.retriable, "{}", e.message);
    assert!(t.elapsed() >= Duration::from_millis(100), "two backoffs");
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// `DIR/secure.env` of `tests/bed/registry.sh start --secure` (set `DECANT_REGISTRY_SECURE_ENV`
/// to its path): HTTPS fronts with basic authentication, a bearer token and mTLS.
fn secure_env() -> Option<std::collections::HashMap<String, String>> {
    const SECURE: &str = "DECANT_REGISTRY_SECURE_ENV";
    let Ok(path) = std::env::var(SECURE) else {
        eprintln!(
            "skipped: {SECURE} is not set (tests/bed/registry.sh start --secure writes DIR/secure.env; set {SECURE} to that file)"
        );
        return None;
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

fn tls_config(env: &std::collections::HashMap<String, String>, url_key: &str) -> RegistryConfig {
    let mut c = RegistryConfig::new(env[url_key].clone());
    c.ca_file = Some(env["CA"].clone().into());
    c.max_retries = 1;
    c.retry_backoff_ms = 10;
    c
}

#[test]
fn basic_auth_over_tls_with_a_custom_ca() {
    let Some(env) = secure_env() else { return };
    let mut c = tls_config(&env, "BASIC_URL");
    c.basic_auth = Some(decant_registry::BasicAuth {
        username: env["BASIC_USER"].clone(),
        password: decant_registry::Secret::new(env["BASIC_PASSWORD"].clone()),
    });
    let r = RegistryClient::new(&c).expect("client");
    let subject = unique("decant-tls") + "-value";
    let id = r
        .register(&subject, &record("T", r#"{"name":"id","type":"int"}"#))
        .expect("register through the TLS front");
    assert_eq!(r.resolve(id).expect("resolve").format, SchemaFormat::Avro);
    assert!(!format!("{r:?}").contains(&env["BASIC_PASSWORD"]));

    // the key and secret in the URL, as some clients write it
    let with_userinfo = env["BASIC_URL"].replacen(
        "https://",
        &format!("https://{}:{}@", env["BASIC_USER"], env["BASIC_PASSWORD"]),
        1,
    );
    let mut c2 = tls_config(&env, "BASIC_URL");
    c2.url = decant_registry::Urls(vec![with_userinfo]);
    let r2 = RegistryClient::new(&c2).expect("client");
    assert!(r2.subjects().expect("subjects").contains(&subject));

    // a wrong secret: 401, fatal, not retried, and not printed
    let mut bad = c.clone();
    bad.basic_auth = Some(decant_registry::BasicAuth {
        username: env["BASIC_USER"].clone(),
        password: decant_registry::Secret::new("not-the-secret"),
    });
    let e = RegistryClient::new(&bad)
        .expect("client")
        .subjects()
        .expect_err("401");
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.retry_class(), RetryClass::Fatal);
    assert!(!e.to_string().contains("not-the-secret"));

    // the public roots (no ca_file) and an unrelated CA do not trust the bed's certificate:
    // a TLS failure, which retrying cannot fix
    for ca in [None, Some(env["OTHER_CA"].clone())] {
        let mut c3 = c.clone();
        c3.ca_file = ca.clone().map(Into::into);
        let e = RegistryClient::new(&c3)
            .expect("client")
            .subjects()
            .expect_err("untrusted certificate");
        assert!(
            matches!(
                e,
                RegistryError::Transport {
                    retriable: false,
                    ..
                }
            ),
            "{ca:?}: {e}"
        );
        assert_eq!(e.retry_class(), RetryClass::Fatal);
    }
}

#[test]
fn bearer_token_over_tls() {
    let Some(env) = secure_env() else { return };
    let mut c = tls_config(&env, "BEARER_URL");
    c.bearer_token = Some(decant_registry::Secret::new(env["BEARER_TOKEN"].clone()));
    let r = RegistryClient::new(&c).expect("client");
    assert_eq!(
        r.compatibility(None).expect("config"),
        Compatibility::Backward
    );
    c.bearer_token = Some(decant_registry::Secret::new("expired"));
    let e = RegistryClient::new(&c)
        .expect("client")
        .subjects()
        .expect_err("401");
    assert_eq!(e.status(), Some(401), "{e}");
}

#[test]
fn mutual_tls() {
    let Some(env) = secure_env() else { return };
    let mut c = tls_config(&env, "MTLS_URL");
    c.client_cert_file = Some(env["CLIENT_CERT"].clone().into());
    c.client_key_file = Some(env["CLIENT_KEY"].clone().into());
    let r = RegistryClient::new(&c).expect("client");
    r.subjects().expect("subjects with a client certificate");

    let without = tls_config(&env, "MTLS_URL");
    let e = RegistryClient::new(&without)
        .expect("client")
        .subjects()
        .expect_err("no client certificate");
    assert!(matches!(e, RegistryError::Transport { .. }), "{e}");
}
