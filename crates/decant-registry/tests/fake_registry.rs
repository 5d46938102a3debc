//! The client against a scripted HTTP server on 127.0.0.1 (in this process, no registry): what it
//! sends (paths, headers, bodies) and how it handles each kind of answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use decant_decode::{SchemaFormat, SchemaResolver};
use decant_model::RetryClass;
use decant_registry::{
    BasicAuth, RegistryClient, RegistryConfig, RegistryError, Schema, SchemaType, Secret, Version,
};

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Script = Vec<(u16, &'static str, &'static str)>;

/// Reads the requests of one connection, logs them and answers each with the next step.
fn answer(stream: TcpStream, log: &Mutex<Vec<Seen>>, next: &AtomicUsize, script: &Script) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut headers = Vec::new();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.trim_end().split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.to_owned(), v.trim().to_owned()));
            }
        }
        let mut body = vec![0; len];
        let _ = reader.read_exact(&mut body);
        log.lock().expect("log").push(Seen {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let n = next.fetch_add(1, Ordering::SeqCst);
        let (status, extra, text) = script[n.min(script.len() - 1)];
        let extra = if extra.is_empty() {
            String::new()
        } else {
            format!("{extra}\r\n")
        };
        let _ = write!(
            out,
            "HTTP/1.1 {status} X\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n{extra}Content-Length: {}\r\n\r\n{text}",
            text.len()
        );
        let _ = out.flush();
    }
}

/// Answers each connection's requests with the next scripted (status, extra header, body); the
/// last answer repeats. Returns the base URL and the log of requests.
fn serve(script: Script) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let next = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    std::thread::spawn(move || {
        // a thread per connection: clients keep connections open in their pools
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (log, next, script) = (log.clone(), next.clone(), script.clone());
            std::thread::spawn(move || answer(stream, &log, &next, &script));
        }
    });
    (url, seen)
}

fn config(url: &str) -> RegistryConfig {
    let mut c = RegistryConfig::new(url);
    c.retry_backoff_ms = 1;
    c.retry_backoff_max_ms = 20;
    c.max_retries = 3;
    c.request_timeout_ms = 2_000;
    c
}

const AVRO: &str = r#"{"schema":"{\"type\":\"record\",\"name\":\"K\",\"fields\":[{\"name\":\"id\",\"type\":\"int\"}]}"}"#;

#[test]
fn schema_by_id_is_fetched_once_and_cached() {
    let (url, seen) = serve(vec![(200, "", AVRO)]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let a = client.schema_by_id(7).expect("schema");
    let b = client.schema_by_id(7).expect("schema");
    assert_eq!(a.schema_type, SchemaType::Avro);
    assert!(a.text.contains("\"K\""));
    assert!(Arc::ptr_eq(&a, &b));
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/schemas/ids/7");
    assert!(
        seen[0]
            .header("accept")
            .is_some_and(|v| v.contains("schemaregistry"))
    );
    assert!(seen[0].header("authorization").is_none());
}

#[test]
fn outages_are_retried_then_succeed() {
    let (url, seen) = serve(vec![
        (503, "", r#"{"error_code":50003,"message":"down"}"#),
        (500, "", "<html>oops</html>"),
        (429, "Retry-After: 0", ""),
        (200, "", AVRO),
    ]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    client.schema_by_id(1).expect("the fourth attempt succeeds");
    assert_eq!(seen.lock().expect("log").len(), 4);
}

#[test]
fn retries_are_bounded_and_the_error_is_retriable() {
    let (url, seen) = serve(vec![(503, "", r#"{"error_code":50003,"message":"down"}"#)]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let e = client.schema_by_id(1).expect_err("never succeeds");
    assert_eq!(seen.lock().expect("log").len(), 4, "1 try + max_retries 3");
    assert!(e.is_retriable());
    assert_eq!(e.retry_class(), RetryClass::Retriable);
    assert_eq!(e.status(), Some(503));
    let r = client.resolve(1).expect_err("resolver too");
    assert!(r.retriable, "{}", r.message);
}

#[test]
fn not_found_is_final_and_not_retried() {
    let (url, seen) = serve(vec![(
        404,
        "",
        r#"{"error_code":40403,"message":"Schema 9 not found"}"#,
    )]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let e = client.schema_by_id(9).expect_err("404");
    assert_eq!(seen.lock().expect("log").len(), 1);
    assert!(e.is_not_found());
    assert_eq!(e.retry_class(), RetryClass::BadRecord);
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
    assert!(e.to_string().contains("Schema 9 not found"), "{e}");
    let r = client.resolve(9).expect_err("resolver");
    assert!(!r.retriable);
}

#[test]
fn connection_refused_moves_to_the_next_url() {
    // a port nobody listens on: bind, take the port, close
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let (url, seen) = serve(vec![(200, "", r#"{"schemaType":"JSON","schema":"{}"}"#)]);
    let mut c = config(&dead_url);
    c.url.0.push(url);
    let client = RegistryClient::new(&c).expect("client");
    let s = client.schema_by_id(3).expect("second URL answers");
    assert_eq!(s.schema_type, SchemaType::Json);
    assert_eq!(seen.lock().expect("log").len(), 1);
    assert_eq!(
        client.resolve(3).expect("cached").format,
        SchemaFormat::Json
    );
}

#[test]
fn unreachable_registry_fails_retriably_within_the_retry_budget() {
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let client = RegistryClient::new(&config(&dead_url)).expect("client");
    let t = Instant::now();
    let e = client.subjects().expect_err("nobody there");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        matches!(
            e,
            RegistryError::Transport {
                retriable: true,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn basic_auth_from_config_and_from_the_url_never_printed() {
    let (url, seen) = serve(vec![(200, "", r#"["a-value","b-key"]"#)]);
    let mut c = config(&url);
    c.basic_auth = Some(BasicAuth {
        username: "KEY".into(),
        password: Secret::new("s3cret"),
    });
    let client = RegistryClient::new(&c).expect("client");
    assert_eq!(
        client.subjects().expect("subjects"),
        vec!["a-value", "b-key"]
    );
    // base64("KEY:s3cret")
    assert_eq!(
        seen.lock().expect("log")[0].header("authorization"),
        Some("Basic S0VZOnMzY3JldA==")
    );
    let printed = format!("{client:?} {c:?}");
    assert!(
        !printed.contains("s3cret") && !printed.contains("S0VZOnMzY3JldA"),
        "{printed}"
    );

    let with_userinfo = url.replacen("http://", "http://KEY:s3cret@", 1);
    let client = RegistryClient::new(&config(&with_userinfo)).expect("client");
    client.subjects().expect("subjects");
    assert_eq!(
        seen.lock().expect("log")[1].header("authorization"),
        Some("Basic S0VZOnMzY3JldA==")
    );
    assert!(!client.urls()[0].contains("s3cret"));
    assert!(!format!("{client:?}").contains("s3cret"));
}

#[test]
fn bearer_token_and_errors_without_secrets() {
    let (url, seen) = serve(vec![(
        401,
        "",
        r#"{"error_code":401,"message":"Unauthorized"}"#,
    )]);
    let mut c = config(&url);
    c.bearer_token = Some(Secret::new("tok-123"));
    let client = RegistryClient::new(&c).expect("client");
    let e = client.subjects().expect_err("401");
    assert_eq!(e.retry_class(), RetryClass::Fatal);
    assert_eq!(seen.lock().expect("log").len(), 1, "401 is not retried");
    assert_eq!(
        seen.lock().expect("log")[0].header("authorization"),
        Some("Bearer tok-123")
    );
    assert!(!e.to_string().contains("tok-123"));
    assert!(!format!("{e:?}").contains("tok-123"));
}

#[test]
fn register_lookup_compatibility_config_requests() {
    let (url, seen) = serve(vec![
        (200, "", r#"{"id":42}"#),
        (
            200,
            "",
            r#"{"subject":"t/x-value","version":3,"id":42,"schema":"\"int\""}"#,
        ),
        (
            200,
            "",
            r#"{"is_compatible":false,"messages":["reader type: STRING not compatible"]}"#,
        ),
        (200, "", r#"{"compatibilityLevel":"BACKWARD"}"#),
        (200, "", r#"{"compatibility":"FULL"}"#),
        (200, "", r#"[1,2,3]"#),
        (
            200,
            "",
            r#"{"subject":"t/x-value","version":3,"id":42,"schema":"\"int\""}"#,
        ),
    ]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let s = Schema::avro("\"int\"");
    assert_eq!(client.register("t/x-value", &s).expect("register"), 42);
    let found = client.lookup("t/x-value", &s).expect("lookup");
    assert_eq!((found.version, found.id), (3, 42));
    let compat = client
        .check_compatibility("t/x-value", Version::Latest, &Schema::avro("\"string\""))
        .expect("compat");
    assert!(!compat.is_compatible);
    assert_eq!(compat.messages.len(), 1);
    assert_eq!(
        client.compatibility(None).expect("config"),
        decant_registry::Compatibility::Backward
    );
    client
        .set_compatibility(Some("t/x-value"), decant_registry::Compatibility::Full)
        .expect("put config");
    assert_eq!(
        client.versions("t/x-value").expect("versions"),
        vec![1, 2, 3]
    );
    client.version("t/x-value", Version::Number(3)).expect("v3");
    client
        .version("t/x-value", Version::Number(3))
        .expect("v3 cached");
    // cached: the schema registered under id 42 needs no GET
    assert_eq!(client.schema_by_id(42).expect("cached").text, "\"int\"");

    let seen = seen.lock().expect("log");
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        lines,
        vec![
            "POST /subjects/t%2Fx-value/versions",
            "POST /subjects/t%2Fx-value",
            "POST /compatibility/subjects/t%2Fx-value/versions/latest?verbose=true",
            "GET /config",
            "PUT /config/t%2Fx-value",
            "GET /subjects/t%2Fx-value/versions",
            "GET /subjects/t%2Fx-value/versions/3",
        ]
    );
    assert_eq!(seen[0].body, r#"{"schema":"\"int\""}"#);
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/vnd.schemaregistry.v1+json")
    );
    assert_eq!(seen[4].body, r#"{"compatibility":"FULL"}"#);
}

#[test]
fn a_non_json_success_is_a_protocol_error() {
    let (url, _) = serve(vec![(200, "", "<html>a proxy login page</html>")]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let e = client.schema_by_id(1).expect_err("not JSON");
    assert!(matches!(e, RegistryError::Protocol { .. }), "{e}");
    assert_eq!(e.retry_class(), RetryClass::Fatal);
}

#[test]
fn bad_tls_files_are_configuration_errors() {
    let mut c = RegistryConfig::new("https://127.0.0.1:1");
    c.ca_file = Some("/nonexistent/ca.pem".into());
    let e = RegistryClient::new(&c).expect_err("missing file");
    assert!(matches!(e, RegistryError::Config(_)), "{e}");
    let dir = std::env::temp_dir().join(format!("decant-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    c.ca_file = Some(empty);
    let e = RegistryClient::new(&c).expect_err("no certificate");
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn avro_references_are_inlined_for_the_decoder() {
    let (url, seen) = serve(vec![
        (
            200,
            "",
            r#"{"schema":"{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"shop\",\"fields\":[{\"name\":\"ship\",\"type\":\"shop.Address\"},{\"name\":\"bill\",\"type\":[\"null\",\"shop.Address\"]}]}","references":[{"name":"shop.Address","subject":"address","version":1}]}"#,
        ),
        (
            200,
            "",
            r#"{"subject":"address","version":1,"id":5,"schema":"{\"type\":\"record\",\"name\":\"Address\",\"namespace\":\"shop\",\"fields\":[{\"name\":\"street\",\"type\":\"string\"}]}"}"#,
        ),
    ]);
    let client = RegistryClient::new(&config(&url)).expect("client");
    let r = client.resolve(6).expect("resolved");
    assert_eq!(r.format, SchemaFormat::Avro);
    let parsed = apache_avro::Schema::parse_str(&r.text).expect("self-contained Avro");
    assert!(format!("{parsed:?}").contains("street"));
    let paths: Vec<String> = seen
        .lock()
        .expect("log")
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        paths,
        vec!["/schemas/ids/6", "/subjects/address/versions/1"]
    );
}
