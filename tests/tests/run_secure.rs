//! `decant run` over the secure listeners of the bed's broker (`broker.sh --secure`):
//! PostgreSQL → Debezium → broker (plaintext listener) → the real `decant` binary consuming and
//! producing over SASL_SSL PLAIN, SASL_SSL SCRAM-SHA-512, mTLS and SASL_SSL OAUTHBEARER (OIDC
//! client credentials against `tests/bed/oidc.py`) → upsert topics read back over plaintext and
//! compared with PostgreSQL. Secrets come from the environment and a file and must never reach
//! decant's log. A wrong password, an unknown CA, a forged and an expired token each stop
//! decant at start-up with one clear error and exit status 1.

use std::time::{Duration, Instant};

use decant_tests::bed::{
    Broker, DecantProcess, LiveSource, SecureEnv, http_get, random_name, read_output_settled,
    wait_for, write_decant_config,
};
use decant_tests::{PgMode, assert_pg_state};

/// The `[kafka.client]` block of each way in. Secrets are `${env:…}` / `${file:…}` references;
/// their values are passed in the environment of the decant process.
fn client_block(s: &SecureEnv, how: &str, secret_file: &std::path::Path) -> (String, String) {
    let ca = s.get("CA");
    match how {
        "plain" => (
            s.get("SASL_SSL").into(),
            format!(
                r#"[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "PLAIN"
"sasl.username" = "{}"
"sasl.password" = "${{env:BED_KAFKA_PASSWORD}}"
"ssl.ca.location" = "{ca}"
"#,
                s.get("PLAIN_USER")
            ),
        ),
        "scram" => (
            s.get("SASL_SSL").into(),
            format!(
                r#"[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "{}"
"sasl.password" = "${{file:{}}}"
"ssl.ca.location" = "{ca}"
"#,
                s.get("SCRAM_USER"),
                secret_file.display()
            ),
        ),
        "mtls" => (
            s.get("MTLS").into(),
            format!(
                r#"[kafka.client]
"security.protocol" = "SSL"
"ssl.ca.location" = "{ca}"
"ssl.certificate.location" = "{}"
"ssl.key.location" = "{}"
"#,
                s.get("CLIENT_CERT"),
                s.get("CLIENT_KEY")
            ),
        ),
        "oidc" => (
            s.get("OAUTH").into(),
            format!(
                r#"[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "OAUTHBEARER"
"sasl.oauthbearer.method" = "oidc"
"sasl.oauthbearer.client.id" = "${{env:BED_OIDC_CLIENT_ID}}"
"sasl.oauthbearer.client.secret" = "${{env:BED_OIDC_CLIENT_SECRET}}"
"sasl.oauthbearer.token.endpoint.url" = "{}"
"ssl.ca.location" = "{ca}"
"#,
                s.get("OIDC_TOKEN_URL")
            ),
        ),
        other => panic!("unknown way in {other}"),
    }
}

#[test]
fn sasl_plain_scram_mtls_and_oidc_carry_the_stream() {
    let started = Instant::now();
    let LiveSource {
        bed,
        broker,
        schema,
        prefix,
        dbz,
    } = LiveSource::start_on(Broker::start_secure(), |_| Vec::new());
    let s = broker.secure();
    bed.psql_files(&["workload_stream.sql"], &[("schema", &schema.name)]);
    bed.psql(
        &format!("insert into \"{}\".marker values (1, 'end')", schema.name),
        &[],
    );
    let expected = bed.pg_state(&schema.name);
    let work = std::env::temp_dir().join(random_name("decant-secure"));
    std::fs::create_dir_all(&work).expect("work dir");
    let secret_file = work.join("scram-password");
    std::fs::write(&secret_file, format!("{}\n", s.get("SCRAM_PASSWORD"))).expect("secret");
    let env = [
        ("BED_KAFKA_PASSWORD", s.get("PLAIN_PASSWORD")),
        ("BED_OIDC_CLIENT_ID", s.get("OIDC_CLIENT_ID")),
        ("BED_OIDC_CLIENT_SECRET", s.get("OIDC_CLIENT_SECRET")),
    ];
    for how in ["plain", "scram", "mtls", "oidc"] {
        let out_prefix = random_name(&format!("out_{how}"));
        let (bootstrap, block) = client_block(&s, how, &secret_file);
        let (config, port) = write_decant_config(
            &work.join(how),
            &bootstrap,
            &prefix,
            &out_prefix,
            &format!("[log]\nlevel = \"debug\"\n\n{block}"),
        );
        let log = work.join(format!("{how}.log"));
        let mut decant = DecantProcess::start(&config, &log, &env);
        wait_for(
            Duration::from_secs(90),
            &format!("decant /ready ({how})"),
            || {
                assert!(
                    decant.is_running(),
                    "decant ({how}) exited:\n{}",
                    decant.log_tail(40)
                );
                http_get(port, "/ready").filter(|(st, _)| *st == 200)
            },
        );
        // Read back over the plaintext listener.
        let (_, run) = read_output_settled(&broker.bootstrap(), &out_prefix, &mut decant);
        assert_pg_state(
            &format!("decant run over {how}"),
            &run,
            &expected,
            PgMode::Exact,
        );
        let status = decant.terminate(Duration::from_secs(60));
        assert!(status.success(), "{how}: exit status {status}");
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(
            !text.contains("\u{1b}["),
            "{how}: colour codes in a log file"
        );
        for secret in [
            s.get("PLAIN_PASSWORD"),
            s.get("SCRAM_PASSWORD"),
            s.get("OIDC_CLIENT_SECRET"),
        ] {
            assert!(!text.contains(secret), "{how}: a secret reached the log");
        }
        let (_, metrics) = http_get(port, "/metrics").unwrap_or_default();
        assert!(!metrics.contains(s.get("PLAIN_PASSWORD")));
        eprintln!(
            "run_secure: {how} ok at {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    dbz.stop();
    let _ = std::fs::remove_dir_all(&work);
}

/// Starts decant with `block` on `bootstrap` and expects it to exit 1 within a minute with one
/// error naming the refusal; returns the log.
fn refused(broker: &Broker, bootstrap: &str, block: &str, env: &[(&str, &str)]) -> String {
    let work = std::env::temp_dir().join(random_name("decant-refused"));
    let (config, _) = write_decant_config(&work, bootstrap, "src_none", "out_none", block);
    let log = work.join("decant.log");
    let mut decant = DecantProcess::start(&config, &log, env);
    let status = wait_for(Duration::from_secs(60), "decant to give up", || {
        decant.child.try_wait().ok().flatten()
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "exit status; log:\n{text}");
    let errors = text.lines().filter(|l| l.contains("cannot start")).count();
    assert_eq!(errors, 1, "one clear error; log:\n{text}");
    assert!(
        text.contains("refused the consumer's connection"),
        "the error says the cluster refused us; log:\n{text}"
    );
    let _ = broker;
    let _ = std::fs::remove_dir_all(&work);
    text
}

#[test]
fn wrong_password_unknown_ca_and_bad_tokens_stop_decant_with_one_clear_error() {
    let broker = Broker::start_secure();
    let s = broker.secure();
    let dir = std::env::temp_dir().join(random_name("decant-refused-secret"));
    std::fs::create_dir_all(&dir).expect("dir");
    let secret_file = dir.join("pw");
    std::fs::write(&secret_file, "not-the-password").expect("secret");

    let (bootstrap, plain) = client_block(&s, "plain", &secret_file);
    let log = refused(
        &broker,
        &bootstrap,
        &plain,
        &[("BED_KAFKA_PASSWORD", "wrong-password-123")],
    );
    assert!(log.contains("Authentication failed"), "{log}");
    assert!(
        !log.contains("wrong-password-123"),
        "the password is not logged"
    );

    let (bootstrap, scram) = client_block(&s, "scram", &secret_file);
    let other_ca = scram.replace(s.get("CA"), s.get("OTHER_CA"));
    let log = refused(&broker, &bootstrap, &other_ca, &[]);
    assert!(log.contains("certificate verify failed"), "{log}");

    let (bootstrap, oidc) = client_block(&s, "oidc", &secret_file);
    for (id, secret) in [
        (
            s.get("OIDC_FORGED_CLIENT_ID"),
            s.get("OIDC_FORGED_CLIENT_SECRET"),
        ),
        (
            s.get("OIDC_EXPIRED_CLIENT_ID"),
            s.get("OIDC_EXPIRED_CLIENT_SECRET"),
        ),
        (s.get("OIDC_CLIENT_ID"), "not-the-client-secret"),
    ] {
        let log = refused(
            &broker,
            &bootstrap,
            &oidc,
            &[
                ("BED_OIDC_CLIENT_ID", id),
                ("BED_OIDC_CLIENT_SECRET", secret),
            ],
        );
        assert!(!log.contains(secret), "the client secret is not logged");
        eprintln!(
            "run_secure: {id}: {}",
            log.lines()
                .find(|l| l.contains("cannot start"))
                .unwrap_or_default()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
