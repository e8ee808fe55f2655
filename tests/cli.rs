//! The operator's CLI, run as a process against the same configuration the server uses.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

fn portcullis(data: &std::path::Path) -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_portcullis")), data)
}

/// `portcullis` run by a shell after `setup` (`umask 000`, `ulimit -n 256`): arguments as for
/// [`portcullis`].
fn portcullis_after(setup: &str, data: &std::path::Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("{setup} && exec \"$0\" \"$@\""), env!("CARGO_BIN_EXE_portcullis")]);
    configured(cmd, data)
}

fn configured(mut cmd: Command, data: &std::path::Path) -> Command {
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
fn client_add_promises_only_algorithms_the_server_signs_with() {
    let data = tempfile::tempdir().unwrap();
    let add = |flag: &str, alg: &str| {
        portcullis(data.path())
            .args(["client", "add", "--name", "RP", "--redirect-uri", "https://app.example.com/cb"])
            .args([flag, alg, "--json"])
            .output()
            .unwrap()
    };
    for flag in ["--id-token-signed-response-alg", "--authorization-signed-response-alg"] {
        for alg in ["ES256", "RS256", "EdDSA"] {
            let out = add(flag, alg);
            assert!(out.status.success(), "{flag} {alg}: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = add(flag, "PS256");
        assert!(!out.status.success(), "{flag} PS256");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&flag[2..].replace('-', "_")) && stderr.contains("RS256"), "{stderr}");
    }
    let list = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    let listed: Vec<serde_json::Value> =
        String::from_utf8(list.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(listed.iter().any(|c| c["id_token_signed_response_alg"] == "RS256"), "{listed:?}");
    assert!(listed.iter().any(|c| c["authorization_signed_response_alg"] == "EdDSA"), "{listed:?}");
}

#[test]
fn client_add_response_types_are_exactly_those_given() {
    let data = tempfile::tempdir().unwrap();
    let help = portcullis(data.path()).args(["client", "add", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("only those listed") && help.contains("`code` alone"), "{help}");
    let add = |name: &str, types: &[&str]| {
        let mut cmd = portcullis(data.path());
        cmd.args(["client", "add", "--name", name, "--redirect-uri", "https://app.example.com/cb", "--json"]);
        for t in types {
            cmd.args(["--response-type", t]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    add("A", &[]);
    add("B", &["code id_token"]);
    add("C", &["code", "id_token token"]);
    let list = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    let listed: Vec<serde_json::Value> =
        String::from_utf8(list.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types = |name: &str| listed.iter().find(|c| c["name"] == name).unwrap()["response_types"].clone();
    assert_eq!(types("A"), serde_json::json!(["code"]));
    assert_eq!(types("B"), serde_json::json!(["code id_token"]), "code is not kept unless listed");
    assert_eq!(types("C"), serde_json::json!(["code", "id_token token"]));
}

#[test]
fn client_add_registers_where_the_server_may_call_the_client() {
    let data = tempfile::tempdir().unwrap();
    let out = portcullis(data.path())
        .args(["client", "add", "--name", "Signed", "--redirect-uri", "https://app.example.com/cb"])
        .args(["--token-endpoint-auth-method", "private_key_jwt", "--jwks-uri", "https://app.example.com/jwks.json"])
        .args(["--request-uri", "https://app.example.com/request.jwt"])
        .args(["--backchannel-logout-uri", "https://app.example.com/logout"])
        .args(["--grant-type", "urn:ietf:params:oauth:grant-type:token-exchange"])
        .args(["--audience", "https://api.example.com", "--dpop-bound-access-tokens", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    let client: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(client["jwks_uri"], "https://app.example.com/jwks.json");
    assert_eq!(client["request_uris"], serde_json::json!(["https://app.example.com/request.jwt"]));
    assert_eq!(client["backchannel_logout_uri"], "https://app.example.com/logout");
    assert_eq!(client["audiences"], serde_json::json!(["https://api.example.com"]));
    assert_eq!(client["dpop_bound_access_tokens"], true);

    let out = portcullis(data.path())
        .args(["client", "add", "--name", "Bad", "--backchannel-logout-uri", "http://app.example.com/logout"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("backchannel_logout_uri"));
}

#[test]
fn client_add_registers_the_origins_of_its_browser_applications() {
    let data = tempfile::tempdir().unwrap();
    let add = |args: &[&str]| {
        portcullis(data.path())
            .args(["client", "add", "--name", "SPA", "--public", "--redirect-uri", "https://spa.example.com/cb"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = add(&["--allowed-origin", "https://spa.example.com", "--allowed-origin", "http://localhost:5173"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = add(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = portcullis(data.path()).args(["client", "list"]).output().unwrap();
    let mut listed: Vec<serde_json::Value> =
        String::from_utf8(list.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    listed.sort_by_key(|c| c["allowed_origins"].as_array().map(Vec::len));
    // Without the option, the origin of its redirect URI.
    assert_eq!(listed[0]["allowed_origins"], serde_json::json!(["https://spa.example.com"]));
    assert_eq!(listed[1]["allowed_origins"], serde_json::json!(["https://spa.example.com", "http://localhost:5173"]));

    let out = add(&["--allowed-origin", "https://spa.example.com/app"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed_origins"));
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
            "Carol Rossi",
            "--given-name",
            "Carol",
            "--family-name",
            "Rossi",
            "--company",
            "ACME",
            "--role",
            "user",
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
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["email"], "carol@example.com");
    assert_eq!((listed["given_name"].as_str(), listed["family_name"].as_str()), (Some("Carol"), Some("Rossi")));
    assert_eq!(listed["roles"], serde_json::json!(["user"]));
}

/// `keys list`, `keys rotate [--now]` and `keys retire KID`, each printing keys as JSON lines.
#[test]
fn keys_are_listed_rotated_and_retired() {
    let data = tempfile::tempdir().unwrap();
    let keys = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = portcullis(data.path()).arg("keys").args(args).output().unwrap();
        assert!(out.status.success(), "keys {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let states = |keys: &[serde_json::Value]| {
        let mut states: Vec<(String, String)> = keys
            .iter()
            .map(|k| (k["algorithm"].as_str().unwrap().to_owned(), k["state"].as_str().unwrap().to_owned()))
            .collect();
        states.sort();
        states
    };
    let each = |state: &str| -> Vec<(String, String)> {
        ["ES256", "EdDSA", "RS256"].iter().map(|a| ((*a).to_owned(), state.to_owned())).collect()
    };
    let first = keys(&["list"]);
    assert_eq!(states(&first), each("signing"), "a key for every algorithm served");

    let next = keys(&["rotate"]);
    assert_eq!(states(&next), each("next"), "published ahead of signing");
    assert!(next.iter().all(|k| k["signs_from"].as_i64().unwrap() >= k["created_at"].as_i64().unwrap() + 3600));
    let mut both = [each("next"), each("signing")].concat();
    both.sort();
    assert_eq!(states(&keys(&["list"])), both);

    let now = keys(&["rotate", "--now"]);
    assert_eq!(states(&now), each("signing"), "--now: signing at once");
    let listed = keys(&["list"]);
    for key in &first {
        let row = listed.iter().find(|k| k["kid"] == key["kid"]).unwrap();
        assert_eq!(row["state"], "retiring", "{row}");
        assert!(row["published_until"].as_i64().is_some(), "{row}");
    }

    let signing = now.iter().find(|k| k["algorithm"] == "ES256").unwrap()["kid"].as_str().unwrap().to_owned();
    let changed = keys(&["retire", &signing]);
    assert_eq!(changed.len(), 2, "the retired key and the one that signs in its place: {changed:?}");
    let retired = changed.iter().find(|k| k["kid"] == signing.as_str()).unwrap();
    assert_eq!(retired["state"], "retired");
    let successor = changed.iter().find(|k| k["kid"] != signing.as_str()).unwrap();
    assert_eq!(
        (&successor["algorithm"], &successor["state"]),
        (&serde_json::json!("ES256"), &serde_json::json!("signing"))
    );
    let listed = keys(&["list"]);
    assert_eq!(listed.iter().find(|k| k["kid"] == signing.as_str()).unwrap()["state"], "retired");

    let out = portcullis(data.path()).args(["keys", "retire", "no-such-key"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-key"));
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
fn lifetimes_out_of_bounds_are_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    for (var, key, value) in [
        ("PORTCULLIS_TOKENS__ACCESS_TOKEN_TTL", "tokens.access_token_ttl", "18446744073709551615"),
        ("PORTCULLIS_TOKENS__CODE_TTL", "tokens.code_ttl", "0"),
        ("PORTCULLIS_TOKENS__REFRESH_TOKEN_TTL", "tokens.refresh_token_ttl", "99999999"),
        ("PORTCULLIS_TOKENS__SESSION_TTL", "tokens.session_ttl", "0"),
        ("PORTCULLIS_KEYS__PUBLISH_AHEAD", "keys.publish_ahead", "604801"),
    ] {
        let out = portcullis(data.path()).env(var, value).args(["client", "list"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}={value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(key), "{err}");
    }
}

/// `portcullis serve` on a free loopback port, killed when dropped.
struct Serving {
    child: std::process::Child,
    base: String,
    /// Where its standard error goes.
    log: std::path::PathBuf,
}

impl Serving {
    /// Runs `cmd` (see [`portcullis`]) as `serve` and waits until `/health` answers.
    async fn start(mut cmd: Command, data: &std::path::Path) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = data.join("serve.log");
        let child = cmd
            .env("PORTCULLIS_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("PORTCULLIS_SERVER__ISSUER", &base)
            .env("PORTCULLIS_POLICIES__WATCH", "false")
            .arg("serve")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Self { child, base, log };
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = http.get(format!("{}/health", server.base)).send().await
                && r.status().is_success()
            {
                return server;
            }
            assert!(server.child.try_wait().unwrap().is_none(), "the server exited: {}", server.log_text());
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the server did not come up: {}", server.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

    let mut cmd = portcullis(data.path());
    cmd.env("PORTCULLIS_SERVER__LOG_FORMAT", "pretty")
        .env("PORTCULLIS_SERVER__SIGN_IN_ATTEMPTS_PER_MINUTE", "1")
        .env("PORTCULLIS_SERVER__SIGN_IN_MAX_DELAY_MS", "50")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let server = Serving::start(cmd, data.path()).await;
    let (base, log_path) = (server.base.clone(), server.log.clone());

    let browser = support::Browser::new();
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

/// Runs the CLI; its standard output as JSON lines, or its error text when it fails.
fn run(data: &std::path::Path, args: &[&str]) -> Result<Vec<serde_json::Value>, String> {
    let out = portcullis(data).args(args).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect())
}

fn one(data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut lines = run(data, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert_eq!(lines.len(), 1, "{args:?} prints one record");
    lines.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_applications_templates_and_instances_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();

    // A provider organization with two service roles, and its administrator.
    let org = one(d, &["org", "add", "--name", "Provider", "--role", "vcd:admin", "--role", "vcd:viewer"]);
    let org = org["id"].as_str().unwrap().to_owned();
    let mut add_user = portcullis(d)
        .args(["user", "add", "--username", "alice", "--email", "a@example.com", "--name", "Alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add_user.stdin.take().unwrap().write_all(b"alice's password\n").unwrap();
    let out = add_user.wait_with_output().unwrap();
    assert!(out.status.success());
    let alice: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alice = alice["id"].as_str().unwrap().to_owned();
    let member = one(d, &["org", "member", &org, &alice, "--role", "provider-administrator", "--role", "vcd:admin"]);
    assert_eq!(member["roles"], serde_json::json!(["provider-administrator", "vcd:admin"]));
    let members = run(d, &["org", "members", &org]).unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(one(d, &["org", "show", &org])["available_roles"], serde_json::json!(["vcd:admin", "vcd:viewer"]));

    // An application may not get a role its creator lacks: the error names it, nothing is written.
    let refused = run(
        d,
        &[
            "app",
            "add",
            "--name",
            "Billing",
            "--organization",
            &org,
            "--scope",
            "vcd:admin",
            "--scope",
            "vcd:viewer",
            "--created-by",
            &alice,
        ],
    )
    .unwrap_err();
    assert!(refused.contains("vcd:viewer"), "{refused}");
    assert!(run(d, &["app", "list", "--organization", &org]).unwrap().is_empty());
    let created = one(
        d,
        &[
            "app",
            "add",
            "--name",
            "Billing",
            "--organization",
            &org,
            "--scope",
            "vcd:admin",
            "--created-by",
            &alice,
            "--tokens",
            r#"{"access_token_ttl": 1800}"#,
        ],
    );
    let app_id = created["application"]["id"].as_str().unwrap().to_owned();
    let client_id = created["credentials"]["client_id"].as_str().unwrap().to_owned();
    let secret = created["credentials"]["client_secret"].as_str().unwrap().to_owned();
    let listed = run(d, &["app", "list", "--organization", &org]).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!serde_json::to_string(&listed).unwrap().contains(&secret), "the secret is shown once");

    // Added to its organization by Alice, it gets tokens with her roles ∩ the organization's.
    let instance = one(d, &["instance", "add", &org, "--application", &app_id, "--added-by", &alice]);
    let instance_id = instance["id"].as_str().unwrap().to_owned();
    assert_eq!(instance["effective_roles"], serde_json::json!(["vcd:admin"]));
    assert_eq!(run(d, &["instance", "list", &org]).unwrap().len(), 1);
    // The roles available in the organization change after creation; the instance follows.
    let changed = one(d, &["org", "update", &org, "--role", "vcd:viewer"]);
    assert_eq!(changed["available_roles"], serde_json::json!(["vcd:viewer"]));
    assert_eq!(run(d, &["instance", "list", &org]).unwrap()[0]["effective_roles"], serde_json::json!([]));
    let refused = run(d, &["org", "update", &org, "--role", "member"]).unwrap_err();
    assert!(refused.contains("service role"), "{refused}");
    let changed = one(d, &["org", "update", &org, "--role", "vcd:admin", "--role", "vcd:viewer"]);
    assert_eq!(changed["available_roles"], serde_json::json!(["vcd:admin", "vcd:viewer"]));
    {
        // The server on the CLI's data directory: its database and its keys.
        let dir = d.to_path_buf();
        let server = support::TestServer::start_with(support::Options {
            configure: Some(Box::new(move |c| c.server.data_dir = dir)),
            ..Default::default()
        })
        .await;
        let (status, body) =
            server.form("/token", &[("grant_type", "client_credentials")], Some((&client_id, &secret))).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        assert_eq!(body["scope"], "vcd:admin");
        assert_eq!(body["expires_in"], 1800, "the application's own token lifetime");
    }
    one(d, &["app", "update", &app_id, "--disable"]);
    assert_eq!(one(d, &["app", "show", &app_id])["enabled"], false);
    assert_eq!(run(d, &["instance", "remove", &instance_id]).map(|l| l.len()), Ok(0));
    assert!(run(d, &["instance", "list", &org]).unwrap().is_empty());

    // A module's external application, a template, and a client made from it.
    let crm = one(d, &["app", "add", "--name", "CRM", "--module", "crm", "--description", "Customer records"]);
    let crm = crm["application"]["id"].as_str().unwrap().to_owned();
    let template = one(d, &["template", "add", &crm, "--name", "Reports", "--scope", "openid", "--scope", "api"]);
    let template = template["id"].as_str().unwrap().to_owned();
    let client = one(
        d,
        &["template", "client", &template, "--name", "Report viewer", "--redirect-uri", "https://r.example.com/cb"],
    );
    assert!(client["client_secret"].is_string());
    let changed = one(d, &["template", "update", &template, "--scope", "api"]);
    assert_eq!(changed["scopes"], serde_json::json!(["api"]));
    assert_eq!(run(d, &["template", "list", &crm]).unwrap().len(), 1);
    let refused = run(d, &["template", "delete", &template]).unwrap_err();
    assert!(refused.contains("clients"), "not while clients made from it remain: {refused}");
    run(d, &["client", "delete", client["client_id"].as_str().unwrap()]).unwrap();
    assert_eq!(run(d, &["template", "delete", &template]).map(|l| l.len()), Ok(0));
    assert!(run(d, &["template", "list", &crm]).unwrap().is_empty());

    // An icon is set and removed; a member without roles is no longer a member.
    assert_eq!(
        one(d, &["app", "update", &crm, "--icon", "https://crm.example.com/i.png"])["icon"],
        "https://crm.example.com/i.png"
    );
    assert_eq!(one(d, &["app", "update", &crm, "--icon", ""])["icon"], serde_json::Value::Null);
    one(d, &["org", "member", &org, &alice]);
    assert!(run(d, &["org", "members", &org]).unwrap().is_empty());

    // Bad input names the field and writes nothing; deleting takes everything with it.
    let bad = run(d, &["app", "add", "--name", " ", "--module", "other"]).unwrap_err();
    assert!(bad.contains("name"), "{bad}");
    assert!(run(d, &["app", "add", "--name", "X", "--tokens", "{\"nope\": 1}"]).unwrap_err().contains("nope"));
    for id in [&app_id, &crm] {
        run(d, &["app", "delete", id]).unwrap();
    }
    assert!(run(d, &["app", "list"]).unwrap().is_empty());
    assert!(run(d, &["app", "show", &app_id]).is_err());
    // Ids are random and may start with `-`: they are still ids, not options.
    let unknown = run(d, &["app", "show", "-x9"]).unwrap_err();
    assert!(unknown.contains("no application"), "{unknown}");
}

#[test]
fn the_consent_ui_of_organizations_and_applications_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let org = one(d, &["org", "add", "--name", "Wallets"]);
    let org = org["id"].as_str().unwrap().to_owned();
    let app = one(d, &["app", "add", "--name", "CRM", "--module", "crm"]);
    let app = app["application"]["id"].as_str().unwrap().to_owned();
    for (kind, id) in [("org", &org), ("app", &app)] {
        assert_eq!(one(d, &[kind, "show", id])["consent_ui"], serde_json::Value::Null, "none at first");
        let set = one(d, &[kind, "update", id, "--consent-ui", "consent-compact"]);
        assert_eq!(set["consent_ui"], "consent-compact", "{set}");
        assert_eq!(one(d, &[kind, "show", id])["consent_ui"], "consent-compact", "stored");
        // A name that is no loaded consent UI is refused by field, and nothing changes.
        for name in ["consent-compcat", "scope-template"] {
            let refused = run(d, &[kind, "update", id, "--consent-ui", name]).unwrap_err();
            assert!(refused.contains(&format!("`consent_ui`: no consent-ui plugin named `{name}`")), "{refused}");
        }
        assert_eq!(one(d, &[kind, "show", id])["consent_ui"], "consent-compact");
        // Empty: the next level's choice again.
        assert_eq!(one(d, &[kind, "update", id, "--consent-ui", ""])["consent_ui"], serde_json::Value::Null);
    }
}

#[tokio::test]
async fn an_admin_token_is_what_a_bearer_header_can_carry() {
    let data = tempfile::tempdir().unwrap();
    // RFC 6750 §2.1: a bearer token is a b64token; these could never be sent as one.
    for token in ["ääääääääääääääää", "sixteen chars and a space", "0123456789abcdef\u{7f}", "\"0123456789abcdef\""]
    {
        let out = portcullis(data.path())
            .env("PORTCULLIS_SERVER__ADMIN_TOKEN", token)
            .args(["client", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{token:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("server.admin_token"), "{err}");
    }
    // Digits alone are the text that was set, leading zeros and all, and they open the admin API.
    let digits = "0012345678901234567";
    let mut cmd = portcullis(data.path());
    cmd.env("PORTCULLIS_SERVER__ADMIN_TOKEN", digits);
    let server = Serving::start(cmd, data.path()).await;
    let r = reqwest::Client::new()
        .get(format!("{}/admin/v1/clients", server.base))
        .bearer_auth(digits)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK, "{}", server.log_text());
}

#[test]
fn compiled_plugins_are_cached_owner_only_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let cache = data.path().join("plugin-cache");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let set =
        |p: &std::path::Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    let files = || std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    let run = || {
        let out = portcullis_after("umask 000", data.path()).args(["user", "list"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(mode(&cache), 0o700);
        assert!(!files().is_empty(), "compiled code was cached");
        for file in files() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    };
    run();
    // A cache others may write to (left so by hand, or by an older version) is closed again.
    set(&cache, 0o777);
    for file in files() {
        set(&file, 0o666);
    }
    run();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_cannot_use_up_the_servers_descriptors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let data = tempfile::tempdir().unwrap();
    let mut cmd = portcullis_after("ulimit -n 256", data.path());
    cmd.env("PORTCULLIS_SERVER__HEADER_READ_TIMEOUT_SECS", "1");
    let server = Serving::start(cmd, data.path()).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    // More connections than the server has descriptors, each sending a request line and
    // never the rest of its head.
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
        connection.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        stalled.push(connection);
    }
    let health = reqwest::Client::new()
        .get(format!("{}/health", server.base))
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await;
    assert!(health.is_ok_and(|r| r.status().is_success()), "/health: {}", server.log_text());
    for connection in &mut stalled {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(std::time::Duration::from_secs(20), connection.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a stalled connection stayed open");
    }
    assert!(!server.log_text().contains("Too many open files"), "{}", server.log_text());
}

/// `portcullis plugin check FILE`, run where no configuration is: stdout, stderr, success.
fn plugin_check(file: &std::path::Path) -> (String, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = portcullis(dir.path()).args(["plugin", "check"]).arg(file).output().unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn plugin_check_names_the_kind_and_contract_a_component_implements() {
    let (out, err, ok) = plugin_check(&support::policies_dir().join("scope-template.wasm"));
    assert!(ok, "{out}{err}");
    assert!(out.contains("implements scope-policy, portcullis:plugin@0.5.0: links"), "{out}");
    assert!(out.contains("scope-template.toml: agrees"), "{out}");

    // A storage plugin built for 0.2.0: its log and database are given.
    let legacy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/policies/v0.2.0/storage-sql.wasm");
    let (out, err, ok) = plugin_check(&legacy);
    assert!(ok, "{out}{err}");
    assert!(out.contains("implements storage, portcullis:plugin@0.2.0: links"), "{out}");
    assert!(out.contains("imports portcullis:plugin/database@0.2.0: given"), "{out}");
}

#[test]
fn plugin_check_refuses_a_manifest_that_names_another_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(support::policies_dir().join("scope-template.wasm"), dir.path().join("mine.wasm")).unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "name = \"mine\"\nkind = \"consent-ui\"\ncontract = \"portcullis:plugin@0.4.0\"\n",
    )
    .unwrap();
    let (out, err, ok) = plugin_check(&dir.path().join("mine.wasm"));
    assert!(!ok, "{out}");
    assert!(out.contains("implements scope-policy"), "{out}");
    assert!(err.contains("mine.toml says consent-ui, portcullis:plugin@0.4.0"), "{err}");
}

#[test]
fn plugin_check_names_in_plain_words_what_the_host_does_not_give() {
    let dir = tempfile::tempdir().unwrap();
    // A component that imports WASI's poll and a database it is not lent, and exports no world.
    let wasm = wat::parse_str(
        r#"(component
             (import "wasi:io/poll@0.2.0" (instance))
             (import "portcullis:plugin/database@0.4.0" (instance)))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("odd.wasm"), wasm).unwrap();
    let (out, err, ok) = plugin_check(&dir.path().join("odd.wasm"));
    assert!(!ok, "{out}");
    assert!(out.contains("imports wasi:io/poll@0.2.0: NOT GIVEN, WASI (wasi:io)"), "{out}");
    assert!(
        out.contains("imports portcullis:plugin/database@0.4.0: NOT GIVEN, the database: only a storage plugin"),
        "{out}"
    );
    assert!(err.contains("exports no plugin world"), "{err}");

    let (_, err, ok) = plugin_check(&dir.path().join("absent.wasm"));
    assert!(!ok);
    assert!(err.contains("absent.wasm"), "{err}");
}

#[test]
fn plugin_test_runs_a_policy_against_its_cases_and_update_writes_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.json");
    std::fs::write(
        &cases,
        r#"{"cases": [
            {"name": "an editor", "client": {"scopes": ["openid", "docs.read", "docs.write"]},
             "user": {"username": "ann", "roles": ["docs.write"]}, "requested": ["openid", "docs.read", "docs.write"],
             "expect": {"scopes": ["docs.read"]}},
            {"name": "the client for itself", "grant_type": "client_credentials",
             "client": {"scopes": ["api.read"]}, "requested": ["api.read", "api.write"]}
        ]}"#,
    )
    .unwrap();
    let policy = support::policies_dir().join("scope-role-intersection.wasm");
    let test = |update: bool| {
        let mut cmd = portcullis(dir.path());
        cmd.args(["plugin", "test"]).arg(&policy).arg(&cases);
        if update {
            cmd.arg("--update");
        }
        let out = cmd.output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.success(),
        )
    };
    // A wrong expectation and a case expecting nothing both fail, each named with the answer.
    let (out, err, ok) = test(false);
    assert!(!ok, "{out}");
    assert!(
        out.contains(r#"DIFFERS  an editor: expected {"scopes":["docs.read"]}, answered {"scopes":["docs.write"]}"#),
        "{out}"
    );
    assert!(out.contains(r#"NEW      the client for itself: answered {"denied":"invalid_scope"}"#), "{out}");
    assert!(err.contains("2 of 2 cases differ"), "{err}");

    // --update writes the answers; the next run agrees with them.
    let (out, _, ok) = test(true);
    assert!(ok, "{out}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cases).unwrap()).unwrap();
    assert_eq!(written["cases"][0]["expect"], serde_json::json!({"scopes": ["docs.write"]}));
    assert_eq!(written["cases"][1]["expect"], serde_json::json!({"denied": "invalid_scope"}));
    let (out, err, ok) = test(false);
    assert!(ok, "{out}{err}");
    assert!(out.contains("2 cases as expected"), "{out}");

    // A case file with a field no case has is refused by name.
    std::fs::write(&cases, r#"{"cases": [{"name": "x", "client": {}, "rolez": []}]}"#).unwrap();
    let (_, err, ok) = test(false);
    assert!(!ok);
    assert!(err.contains("rolez"), "{err}");
}

/// `policy simulate`: what a scope policy would grant a stored client and user, printed for
/// people or as JSON, with nothing stored or audited.
#[test]
fn policy_simulate_tries_a_policy_on_stored_records() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let client = one(
        d,
        &["client", "add", "--name", "Reports", "--redirect-uri", "https://app.example.com/cb"]
            .into_iter()
            .chain(["--scope", "openid", "--scope", "reports", "--json"])
            .collect::<Vec<_>>(),
    );
    let client = client["client_id"].as_str().unwrap().to_owned();
    let mut add_user = portcullis(d)
        .args(["user", "add", "--username", "carol", "--email", "c@example.com", "--name", "Carol"])
        .args(["--role", "reports", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add_user.stdin.take().unwrap().write_all(b"a long enough password\n").unwrap();
    assert!(add_user.wait_with_output().unwrap().status.success());

    // The client's own policy (scope-template): the requested scopes it may have.
    let s = one(
        d,
        &[
            "policy", "simulate", "--client", &client, "--user", "carol", "--scope", "reports", "--scope", "mail",
            "--json",
        ],
    );
    assert_eq!(s["plugin"], "scope-template", "{s}");
    assert_eq!(s["granted"], true);
    assert_eq!(s["scopes"], serde_json::json!(["reports"]));
    assert_eq!(s["removed_by_host"]["requested_not_allowed"], serde_json::json!(["mail"]));

    // Another loaded policy in its place, printed for people: the roles the user holds.
    let out = portcullis(d)
        .args(["policy", "simulate", "--client", &client, "--user", "carol", "--plugin", "scope-role-intersection"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("policy:     scope-role-intersection (in place of the client's scope-template)"), "{text}");
    assert!(text.contains("granted:    reports\n"), "{text}");

    // A denial is the answer; an unknown plugin or user is an error naming it.
    let s = one(d, &["policy", "simulate", "--client", &client, "--user", "carol", "--scope", "mail", "--json"]);
    assert_eq!((s["granted"].as_bool(), s["denied"]["error"].as_str()), (Some(false), Some("invalid_scope")), "{s}");
    let e = run(d, &["policy", "simulate", "--client", &client, "--user", "carol", "--plugin", "nope"]).unwrap_err();
    assert!(e.contains("`plugin`"), "{e}");
    let e = run(d, &["policy", "simulate", "--client", &client, "--user", "nobody"]).unwrap_err();
    assert!(e.contains("no user `nobody`"), "{e}");

    // Nothing but the client and the user was recorded.
    let mut kinds: Vec<String> =
        run(d, &["events"]).unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    assert_eq!(kinds, ["client.created", "user.created"], "a simulation records no event");
}

#[test]
fn plugin_new_writes_a_rust_scope_policy_that_compiles_against_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("roles-or-nothing");
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust").canonicalize().unwrap();
    let out = portcullis(dir.path())
        .args(["plugin", "new", "scope-policy", "roles-or-nothing", "--sdk-path"])
        .arg(&sdk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["Cargo.toml", "src/lib.rs", "README.md", "cases.json", "roles-or-nothing.toml", "wit/scope.wit"] {
        assert!(project.join(file).is_file(), "{file} was not written");
    }
    // Every file of the contract, so that its worlds resolve.
    for entry in std::fs::read_dir(sdk.join("wit")).unwrap() {
        let name = entry.unwrap().file_name();
        if name.to_string_lossy().ends_with(".wit") {
            assert!(project.join("wit").join(&name).is_file(), "{name:?} was not written");
        }
    }
    assert_eq!(std::fs::read_to_string(project.join("README.md")).unwrap().lines().count(), 4);
    // Its manifest is one the server takes; its cases are a case file `plugin test` reads.
    let manifest = std::fs::read_to_string(project.join("roles-or-nothing.toml")).unwrap();
    let manifest = portcullis::plugin::Manifest::parse(&manifest, "roles-or-nothing").unwrap();
    assert_eq!(manifest.contract, portcullis::plugin::Contract::V5);
    let cases = std::fs::read_to_string(project.join("cases.json")).unwrap();
    let cases: portcullis::plugin_cases::Cases = serde_json::from_str(&cases).unwrap();
    assert!(cases.cases.iter().all(|c| c.expect.is_some()));
    // The policy compiles against the SDK (on the host, as the built-in plugins' unit tests do).
    let check = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["check", "--offline", "--quiet", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // A second time into the same directory, another language, a bad name: refused.
    let again = portcullis(dir.path()).args(["plugin", "new", "scope-policy", "roles-or-nothing"]).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let py = portcullis(dir.path()).args(["plugin", "new", "storage", "x", "--lang", "python"]).output().unwrap();
    let said = String::from_utf8_lossy(&py.stderr);
    assert!(said.contains("a storage plugin in python has no scaffold"), "{said}");
    assert!(said.contains("--lang python: scope-policy, consent-ui, grant-type"), "{said}");
    let go = portcullis(dir.path()).args(["plugin", "new", "scope-policy", "x", "--lang", "go"]).output().unwrap();
    assert!(String::from_utf8_lossy(&go.stderr).contains("`go` is not a language with scaffolds"));
    let bad = portcullis(dir.path()).args(["plugin", "new", "scope-policy", "Bad_Name"]).output().unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a plugin name"));
}

/// `portcullis` for `plugin` commands: the configured command with `HOME` (where the build
/// tools and their caches are) and `path` as `PATH`.
fn plugin_command(dir: &std::path::Path, path: &std::ffi::OsStr) -> Command {
    let mut cmd = portcullis(dir);
    cmd.env("HOME", std::env::var_os("HOME").unwrap_or_default()).env("PATH", path);
    cmd
}

fn real_path() -> std::ffi::OsString {
    std::env::var_os("PATH").unwrap_or_default()
}

/// `plugin new KIND NAME --lang LANG` in `dir`, then `plugin build` in the project, `plugin check`
/// on what it wrote and, for a scope policy, `plugin test` on its cases. `None` (with a note)
/// when the language's build tool is not installed and `PORTCULLIS_REQUIRE_PLUGIN_TOOLS` is unset.
fn new_build_check_test(dir: &std::path::Path, kind: &str, name: &str, lang: &str) -> Option<std::path::PathBuf> {
    let project = dir.join(name);
    let mut new = plugin_command(dir, &real_path());
    new.args(["plugin", "new", kind, name, "--lang", lang]);
    if lang == "rust" {
        let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rust").canonicalize().unwrap();
        new.arg("--sdk-path").arg(sdk);
    }
    let out = new.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(project.join("README.md")).unwrap().lines().count(), 4);

    let build = plugin_command(&project, &real_path()).args(["plugin", "build"]).output().unwrap();
    let (said, err) = (String::from_utf8_lossy(&build.stdout), String::from_utf8_lossy(&build.stderr));
    if !build.status.success()
        && err.contains("is not installed here")
        && std::env::var_os("PORTCULLIS_REQUIRE_PLUGIN_TOOLS").is_none()
    {
        eprintln!("skipped: a {lang} plugin cannot be built here: {err}");
        return None;
    }
    assert!(build.status.success(), "{said}\n{err}");
    let wasm = project.join(format!("{name}.wasm"));
    assert!(said.contains(&format!("wrote ./{name}.wasm (")), "{said}");
    assert!(said.contains(&format!("implements {kind}, portcullis:plugin@0.5.0: links")), "{said}");
    assert!(said.contains("agrees") && !said.contains("NOT GIVEN"), "{said}");
    let manifest = std::fs::read_to_string(project.join(format!("{name}.toml"))).unwrap();
    let manifest = portcullis::plugin::Manifest::parse(&manifest, name).unwrap();
    let hash = manifest.source_hash.unwrap_or_default();
    assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");

    let check = plugin_command(&project, &real_path()).arg("plugin").arg("check").arg(&wasm).output().unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(said.contains("links") && said.contains("agrees"), "{said}");
    if kind == "consent-ui" {
        consent_ui_serves_a_sign_in(&project, name);
    }
    if kind == "scope-policy" {
        let cases = project.join("cases.json");
        let test =
            plugin_command(&project, &real_path()).arg("plugin").arg("test").arg(&wasm).arg(&cases).output().unwrap();
        let said = String::from_utf8_lossy(&test.stdout);
        assert!(test.status.success(), "{said}{}", String::from_utf8_lossy(&test.stderr));
        assert!(said.contains("3 cases as expected"), "{said}");
    }
    Some(project)
}

/// A server with the consent UI built in `project` as a client's: its login page is the
/// plugin's, and a person signing in and allowing on its pages is sent back with a code.
fn consent_ui_serves_a_sign_in(project: &std::path::Path, name: &str) {
    let policies = support::policies_copy();
    for ext in ["wasm", "toml"] {
        let file = format!("{name}.{ext}");
        std::fs::copy(project.join(&file), policies.path().join(&file)).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let options = support::Options { policies: Some(policies.path().into()), ..Default::default() };
        let server = support::TestServer::start_with(options).await;
        server.user("ann", "ann's long password").await;
        let redirect = "https://app.example.com/cb";
        let client = serde_json::json!({"name": "Pages", "redirect_uris": [redirect], "consent_ui": name});
        let (id, _) = server.client(client).await;
        let url = server.authorize_url(&[("response_type", "code"), ("client_id", &id), ("state", "s")]);
        let browser = support::Browser::new();
        let login = browser.get(url.as_str()).await.text().await.unwrap();
        assert!(login.contains(&format!("<footer>{name}</footer>")) && login.contains("name=\"password\""), "{login}");
        let back = browser.authorize(url.as_str(), "ann", "ann's long password").await;
        assert!(back.as_str().starts_with(redirect) && support::query(&back, "code").is_some(), "{back}");
    });
}

#[test]
fn a_rust_plugin_of_every_kind_is_made_built_and_checked_and_its_scope_policy_passes_its_cases() {
    let dir = tempfile::tempdir().unwrap();
    let Some(project) = new_build_check_test(dir.path(), "scope-policy", "rust-scope", "rust") else { return };
    for kind in ["consent-ui", "storage", "grant-type"] {
        new_build_check_test(dir.path(), kind, &format!("rust-{kind}"), "rust");
    }
    // Built again from the same sources, into another directory: the same hash; a source
    // changed: another.
    let hash = |dir: &std::path::Path| {
        let text = std::fs::read_to_string(dir.join("rust-scope.toml")).unwrap();
        portcullis::plugin::Manifest::parse(&text, "rust-scope").unwrap().source_hash.unwrap()
    };
    let out = dir.path().join("out");
    let again = plugin_command(&project, &real_path()).args(["plugin", "build", "--out"]).arg(&out).output().unwrap();
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    assert_eq!(hash(&out), hash(&project));
    let lib = project.join("src/lib.rs");
    std::fs::write(&lib, std::fs::read_to_string(&lib).unwrap() + "\n// changed\n").unwrap();
    let changed = plugin_command(&project, &real_path()).args(["plugin", "build", "--out"]).arg(&out).output().unwrap();
    assert!(changed.status.success(), "{}", String::from_utf8_lossy(&changed.stderr));
    assert_ne!(hash(&out), hash(&project));
}

#[test]
fn a_javascript_scope_policy_and_consent_ui_are_made_built_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    if new_build_check_test(dir.path(), "scope-policy", "js-scope", "js").is_some() {
        new_build_check_test(dir.path(), "consent-ui", "js-consent", "js");
    }
}

#[test]
fn a_python_scope_policy_and_consent_ui_are_made_built_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    if new_build_check_test(dir.path(), "scope-policy", "py-scope", "python").is_some() {
        new_build_check_test(dir.path(), "consent-ui", "py-consent", "python");
    }
}

#[test]
fn plugin_build_names_a_missing_tool_with_the_commands_that_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let cases = [
        ("js", "node is not installed here; install it with\n  apt-get install nodejs npm"),
        ("python", "componentize-py is not installed here; install it with\n  python3 -m venv "),
        ("rust", "cargo is not installed here; install it with\n"),
    ];
    for (lang, message) in cases {
        let name = format!("missing-{lang}");
        let new =
            portcullis(dir.path()).args(["plugin", "new", "scope-policy", &name, "--lang", lang]).output().unwrap();
        assert!(new.status.success(), "{}", String::from_utf8_lossy(&new.stderr));
        // No tool on PATH, and a HOME with no cache of them.
        let build = portcullis(&dir.path().join(&name))
            .env("PATH", empty.path())
            .env("HOME", home.path())
            .env("RUST_BACKTRACE", "1")
            .args(["plugin", "build"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&build.stderr);
        assert_eq!(build.status.code(), Some(1), "{err}");
        assert!(err.contains(message), "{err}");
        assert!(!err.contains("backtrace") && !err.contains("panicked"), "{err}");
        assert!(!dir.path().join(&name).join(format!("{name}.wasm")).exists());
    }
    assert!(err_of(portcullis(home.path()).args(["plugin", "build"])).contains("no plugin project"));
}

fn err_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn user_reset_factors_by_username_is_recorded() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let mut add_user = portcullis(d)
        .args(["user", "add", "--username", "erin", "--email", "e@example.com", "--name", "Erin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    add_user.stdin.take().unwrap().write_all(b"erin's password\n").unwrap();
    let out = add_user.wait_with_output().unwrap();
    assert!(out.status.success());
    let erin: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let erin = erin["id"].as_str().unwrap().to_owned();

    let reset = one(d, &["user", "reset-factors", "erin"]);
    assert_eq!(reset["id"], erin.as_str());
    let by_id = one(d, &["user", "reset-factors", &erin]);
    assert_eq!(by_id["username"], "erin");
    let unknown = portcullis(d).args(["user", "reset-factors", "nobody"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nobody"));

    let events = run(d, &["events", "--type", "user.factors_reset"]).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["actor"], "operator");
    assert_eq!(events[0]["subject"], format!("user:{erin}"));
}
