//! docker-compose.yml cannot run here (no Docker): this test parses it and cross-checks what
//! would break at `docker compose up`: services and their dependencies, published ports, the
//! decant service's command, mounted configuration (which must pass `decant validate`), the
//! broker address and listen port inside that configuration, and the connector's topics.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use decant_tests::bed::decant_bin;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn strs(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Yaml::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[test]
fn compose_file_is_consistent_with_the_decant_config() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).expect("compose file");
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    let doc = &docs[0];
    let services = doc["services"].as_hash().expect("services");
    let names: BTreeSet<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    for want in [
        "postgres",
        "redpanda",
        "connect",
        "register-connector",
        "console",
        "decant",
    ] {
        assert!(names.contains(want), "service {want} missing: {names:?}");
    }

    // Dependencies name real services; published host ports are unique.
    let mut host_ports = BTreeMap::new();
    for (name, svc) in services {
        let name = name.as_str().expect("service name");
        if let Some(deps) = svc["depends_on"].as_hash() {
            for d in deps.keys() {
                let d = d.as_str().expect("dependency name");
                assert!(names.contains(d), "{name} depends on unknown service {d}");
                if svc["depends_on"][d]["condition"].as_str() == Some("service_healthy") {
                    assert!(
                        !services[&Yaml::String(d.into())]["healthcheck"].is_badvalue(),
                        "{name} waits for {d} to be healthy but {d} has no healthcheck"
                    );
                }
            }
        }
        for p in strs(&svc["ports"]) {
            let host = p.split(':').next().expect("host port").to_owned();
            if let Some(other) = host_ports.insert(host.clone(), name.to_owned()) {
                panic!("host port {host} published by {other} and {name}");
            }
        }
        for v in strs(&svc["volumes"]) {
            if v.starts_with("./") {
                let src = v.split(':').next().expect("volume source");
                assert!(
                    repo().join(src).exists(),
                    "{name} mounts missing file {src}"
                );
            }
        }
    }

    // decant runs `decant run --config <path>` with the config mounted at that path.
    let decant = &services[&Yaml::String("decant".into())];
    let command = strs(&decant["command"]);
    assert_eq!(
        command.first().map(String::as_str),
        Some("run"),
        "{command:?}"
    );
    let at = command
        .iter()
        .position(|c| c == "--config")
        .expect("--config");
    let config_in_container = &command[at + 1];
    let mount = strs(&decant["volumes"])
        .into_iter()
        .find(|v| v.split(':').nth(1) == Some(config_in_container.as_str()))
        .expect("the config path is mounted");
    let config_host = repo().join(mount.split(':').next().expect("source"));
    let state_volume = strs(&decant["volumes"])
        .into_iter()
        .find(|v| !v.starts_with("./"))
        .expect("a named volume for the state store");
    let volume_name = state_volume.split(':').next().expect("volume name");
    assert!(
        !doc["volumes"][volume_name].is_badvalue(),
        "named volume {volume_name} declared"
    );

    // The mounted configuration passes `decant validate` with the service's environment.
    let env: Vec<(String, String)> = decant["environment"]
        .as_hash()
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let out = Command::new(decant_bin())
        .arg("validate")
        .arg("--config")
        .arg(&config_host)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run decant validate");
    assert!(
        out.status.success(),
        "decant validate {}: {}{}",
        config_host.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Inside the config: the broker is a compose service on its internal listener, the state
    // dir is the named volume, the listen port is the published one the healthcheck probes.
    let cfg: toml::Table =
        toml::from_str(&std::fs::read_to_string(&config_host).expect("config")).expect("TOML");
    let bootstrap = cfg["kafka"]["bootstrap_servers"]
        .as_str()
        .expect("bootstrap");
    let resolved = env.iter().fold(bootstrap.to_owned(), |s, (k, v)| {
        s.replace(&format!("${{{k}:-redpanda:9092}}"), v)
            .replace(&format!("${{{k}}}"), v)
    });
    let (host, port) = resolved.split_once(':').expect("host:port");
    assert!(
        names.contains(host),
        "bootstrap host {host} is not a service"
    );
    let broker_cmd = strs(&services[&Yaml::String(host.into())]["command"]).join(" ");
    assert!(
        broker_cmd.contains(&format!("{host}:{port}")),
        "{host} does not advertise {host}:{port}: {broker_cmd}"
    );
    let state_dir = cfg["state"]["dir"].as_str().expect("state.dir");
    assert_eq!(state_volume.split(':').nth(1), Some(state_dir));
    let listen = cfg["observability"]["listen"].as_str().expect("listen");
    let listen_port = listen.rsplit(':').next().expect("port");
    assert!(
        strs(&decant["ports"])
            .iter()
            .any(|p| p.ends_with(&format!(":{listen_port}"))),
        "metrics port {listen_port} is published"
    );
    let health = strs(&decant["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("/{listen_port}")) && health.contains("/ready"),
        "{health}"
    );

    // The source pattern matches the connector's topics.
    let connector: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/postgres-connector.json")).expect("connector"),
    )
    .expect("connector JSON");
    let prefix = connector["topic.prefix"].as_str().expect("topic.prefix");
    let table = connector["table.include.list"]
        .as_str()
        .expect("table list");
    let pattern = cfg["source"]["topic_pattern"]
        .as_str()
        .expect("topic_pattern");
    // The pattern is a literal prefix followed by `.*`.
    let literal_prefix = pattern
        .trim_start_matches('^')
        .strip_suffix(".*")
        .expect("pattern ends in .*")
        .replace("\\.", ".");
    assert!(
        !literal_prefix.contains(['*', '+', '?', '(', '[', '|', '\\']),
        "pattern {pattern} is not a literal prefix"
    );
    let topic = format!("{prefix}.{table}");
    assert!(
        topic.starts_with(&literal_prefix),
        "pattern {pattern} does not cover {topic}"
    );
    assert!(Path::new(&config_host).exists());
}
