//! What an operator meets at start-up: a misspelled environment, and secrets in check-config.

use std::process::Command;

fn esurio(config_dir: &std::path::Path, env: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_esurio"))
        .arg("check-config")
        .env("ESURIO_CONFIG_DIR", config_dir)
        .env("ESURIO_ENV", env)
        .env_remove("ESURIO__DATABASE__URL")
        .output()
        .unwrap()
}

fn config_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("esurio-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/base.yaml"),
        dir.join("base.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("staging.yaml"),
        "kafka:\n  librdkafka:\n    security.protocol: SASL_SSL\n    sasl.username: ingest\n    sasl.password: hunter2-kafka\n    ssl.key.password: hunter2-key\ndatabase:\n  url: postgres://ingest:hunter2-db@db.internal:5432/esurio\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_misspelled_esurio_env_is_an_error_naming_the_file_and_the_choices() {
    let dir = config_dir("env");
    let out = esurio(&dir, "stagign");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("ESURIO_ENV"), "{err}");
    assert!(err.contains("stagign.yaml"), "{err}");
    assert!(
        err.contains("staging"),
        "names the environments that exist: {err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn check_config_redacts_secrets_inside_librdkafka_and_the_database_url() {
    let dir = config_dir("redact");
    let out = esurio(&dir, "staging");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("hunter2"), "a secret was printed: {text}");
    assert!(text.contains("sasl.username"), "{text}");
    assert!(
        text.contains("ingest"),
        "non-secret values stay readable: {text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
