//! The operator's CLI, run as a process against the same configuration the server uses.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

fn portcullis(data: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORTCULLIS_SERVER__DATA_DIR", data)
        .env("PORTCULLIS_POLICIES__DIR", support::policies_dir())
        .env("RUST_LOG", "warn")
        .current_dir(data);
    cmd
}

#[test]
fn client_add_prints_the_secret_once_and_list_never_does() {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path())
        .args([
            "client",
            "add",
            "--name",
            "Reports",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--scope",
            "openid",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["client_id"].as_str().unwrap().to_owned();
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "at least 256 bits");

    let list = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(listed.contains(&id));
    assert!(!listed.contains(&secret));

    let public = portcullis(data.path())
        .args(["client", "add", "--name", "SPA", "--redirect-uri", "https://spa.example.com/", "--public", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&public.stdout).unwrap();
    assert!(v.get("client_secret").is_none());

    let del = portcullis(data.path()).args(["client", "delete", &id]).output().unwrap();
    assert!(del.status.success(), "{}", String::from_utf8_lossy(&del.stderr));
    let again = portcullis(data.path()).args(["client", "delete", &id]).output().unwrap();
    assert!(!again.status.success());
}

#[test]
fn user_add_reads_the_password_from_stdin() {
    let data = tempfile::tempdir().unwrap();
    let mut child = portcullis(data.path())
        .args([
            "user",
            "add",
            "--username",
            "carol",
            "--email",
            "carol@example.com",
            "--name",
            "Carol",
            "--company",
            "ACME",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = portcullis(data.path()).args(["user", "list"]).output().unwrap();
    assert!(String::from_utf8(list.stdout).unwrap().contains("carol@example.com"));
}

#[test]
fn keys_rotate_adds_a_key() {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path()).args(["keys", "rotate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("new signing key: "));
}

#[test]
fn unknown_configuration_keys_are_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path())
        .env("PORTCULLIS_SERVER__LISTNE", "127.0.0.1:1")
        .args(["client", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("listne"), "{err}");

    std::fs::write(data.path().join("portcullis.toml"), "[server]\nissuer = \"not a url\"\n").unwrap();
    let out = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().contains("server.issuer"));
}

#[test]
fn an_empty_or_short_admin_token_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    for token in ["", "short-token"] {
        let out = portcullis(data.path())
            .env("PORTCULLIS_SERVER__ADMIN_TOKEN", token)
            .args(["client", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{token:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("server.admin_token"), "{err}");
    }
    let out = portcullis(data.path())
        .env("PORTCULLIS_SERVER__ADMIN_TOKEN", "a-long-enough-admin-token")
        .args(["client", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn token_lifetimes_out_of_bounds_are_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    for (var, key, value) in [
        ("PORTCULLIS_TOKENS__ACCESS_TOKEN_TTL", "tokens.access_token_ttl", "18446744073709551615"),
        ("PORTCULLIS_TOKENS__CODE_TTL", "tokens.code_ttl", "0"),
        ("PORTCULLIS_TOKENS__REFRESH_TOKEN_TTL", "tokens.refresh_token_ttl", "99999999"),
        ("PORTCULLIS_TOKENS__SESSION_TTL", "tokens.session_ttl", "0"),
    ] {
        let out = portcullis(data.path()).env(var, value).args(["client", "list"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(key), "{err}");
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn a_username_cannot_forge_log_lines() {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path())
        .args(["client", "add", "--name", "rp", "--redirect-uri", "https://rp.example.com/cb", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let client: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let client_id = client["client_id"].as_str().unwrap();

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = data.path().join("serve.log");
    let mut server = portcullis(data.path())
        .env("PORTCULLIS_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_SERVER__ISSUER", &base)
        .env("PORTCULLIS_SERVER__LOG_FORMAT", "pretty")
        .env("PORTCULLIS_SERVER__SIGN_IN_ATTEMPTS_PER_MINUTE", "1")
        .env("PORTCULLIS_SERVER__SIGN_IN_MAX_DELAY_MS", "50")
        .env("PORTCULLIS_POLICIES__WATCH", "false")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .arg("serve")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    // Stopped however the test ends.
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let server = Stop(&mut server);

    let browser = support::Browser::new();
    let mut ready = false;
    for _ in 0..600 {
        if let Ok(r) = browser.http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "the server exited: {}",
            std::fs::read_to_string(&log_path).unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the server did not come up");

    let authorize =
        format!("{base}/authorize?response_type=code&client_id={client_id}&redirect_uri=https://rp.example.com/cb");
    let mut page = browser.get(&authorize).await.text().await.unwrap();
    let username = "mallory\nFORGED admin signed in\r\nFORGED again";
    // Both attempts fail (logged at info); the second, past the username's rate, is first
    // delayed (logged too).
    for _ in 0..2 {
        let r = browser.submit(&page, &[("username", username), ("password", "wrong")]).await;
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
        page = r.text().await.unwrap();
    }

    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("failed sign-in") && log.contains("sign-in attempt delayed"), "{log}");
    assert!(log.contains("FORGED"), "the username was logged: {log}");
    for line in log.lines() {
        assert!(!line.trim_start().starts_with("FORGED"), "a forged log line: {line:?}\n{log}");
    }
}

/// The start-up log of `portcullis user list` on `policies`, one JSON object a line.
fn start_up_log(policies: &std::path::Path) -> Vec<serde_json::Value> {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path())
        .env("PORTCULLIS_POLICIES__DIR", policies)
        .env("PORTCULLIS_SERVER__LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn said(log: &[serde_json::Value], field: &str, value: &str, text: &str) -> bool {
    log.iter().any(|l| l[field] == value && l.to_string().contains(text))
}

#[test]
fn a_wasm_without_its_manifest_is_named_in_the_log() {
    let policies = support::policies_copy();
    std::fs::copy(policies.path().join("scope-template.wasm"), policies.path().join("orphan.wasm")).unwrap();
    let log = start_up_log(policies.path());
    assert!(said(&log, "plugin", "orphan", "no manifest orphan.toml"), "{log:#?}");
}

#[test]
fn a_storage_plugin_that_is_not_the_configured_one_never_migrates() {
    let policies = support::policies_copy();
    let manifest = std::fs::read_to_string(policies.path().join("storage-sql.toml")).unwrap();
    std::fs::write(
        policies.path().join("storage-other.toml"),
        manifest.replace("name = \"storage-sql\"", "name = \"storage-other\""),
    )
    .unwrap();
    std::fs::copy(policies.path().join("storage-sql.wasm"), policies.path().join("storage-other.wasm")).unwrap();
    // A fresh database: the configured plugin applies its migrations, the other one loads
    // (it is linked and validated) but runs none.
    let log = start_up_log(policies.path());
    assert!(said(&log, "plugin", "storage-sql", "applied schema migration"), "{log:#?}");
    assert!(said(&log, "plugin", "storage-other", "plugin loaded"), "{log:#?}");
    assert!(!said(&log, "plugin", "storage-other", "migration"), "{log:#?}");
}
