//! Health and stopping, as a load balancer and an operator see them: `/health/live` and
//! `/health/ready` (storage, plugins, keys, draining), a graceful stop on SIGTERM that answers
//! what is in flight and exits 0, the access log, the client address behind trusted
//! proxies, and start-up errors that say what is wrong in one line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, ADMIN_TOKEN, Options, TestServer};

// --- readiness ---------------------------------------------------------------------------

fn part<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["parts"]
        .as_array()
        .and_then(|parts| parts.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no part {name}: {report}"))
}

#[tokio::test]
async fn live_and_ready_answer_200_on_a_healthy_server_listing_each_part() {
    let server = TestServer::start().await;
    for path in ["/health", "/health/live"] {
        let r = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = server.http.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["status"], "ready", "{report}");
    for name in ["storage", "plugins", "keys", "draining"] {
        assert_eq!(part(&report, name)["state"], "ok", "{report}");
    }
}

/// A TCP proxy to PostgreSQL whose connections can go silent, as over a network that stopped
/// carrying anything.
struct Proxy {
    addr: SocketAddr,
    silent: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let silent = Arc::new(tokio::sync::watch::channel(false).0);
        let quiet = silent.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = quiet.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
                    let silenced = async {
                        while !*watch.borrow_and_update() {
                            if watch.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = silenced => std::future::pending::<()>().await,
                    }
                });
            }
        });
        Self { addr, silent }
    }

    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_host(Some(&self.addr.ip().to_string())).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_naming_storage_while_the_database_does_not_answer() {
    let (url, _guard) = support::fresh_postgres("health").await;
    let parsed = url::Url::parse(&url).unwrap();
    let target = tokio::net::lookup_host((parsed.host_str().unwrap(), parsed.port().unwrap_or(5432)))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(target).await;
    let server = TestServer::start_with(Options { database_url: Some(proxy.url(&url)), ..Default::default() }).await;
    let ready = || async {
        let r = server.http.get(server.url("/health/ready")).send().await.unwrap();
        let (status, retry_after) = (r.status(), r.headers().get("retry-after").is_some());
        (status, retry_after, r.json::<Value>().await.unwrap())
    };
    let (status, _, report) = ready().await;
    assert_eq!(status, StatusCode::OK, "{report}");

    proxy.silent.send_replace(true);
    let (status, retry_after, report) = ready().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{report}");
    assert!(retry_after, "a 503 says when to try again");
    assert_eq!(report["failing"], json!(["storage"]), "{report}");
    assert_eq!(part(&report, "storage")["state"], "failing", "{report}");
    assert_eq!(part(&report, "keys")["state"], "ok", "only storage fails: {report}");
}

// --- a plugin that keeps faulting --------------------------------------------------------

/// `scope-chaos` (tests/policies) installed in `dir` as `name`, its manifest ending with `extra`
/// (an `[on-fault]` table). It traps on scope `trap`, loops past its deadline on `loop`, and
/// adds the claim `"policy": "chaos"` to what it grants.
fn install_faulty(dir: &Path, name: &str, extra: &str) {
    let fixtures = support::fixtures_dir();
    let manifest = std::fs::read_to_string(fixtures.join("scope-chaos.toml")).expect("scope-chaos.toml");
    let manifest = manifest.replace("name = \"scope-chaos\"", &format!("name = \"{name}\""));
    std::fs::write(dir.join(format!("{name}.toml")), format!("{manifest}\n{extra}")).unwrap();
    std::fs::copy(fixtures.join("scope-chaos.wasm"), dir.join(format!("{name}.wasm"))).expect("scope-chaos.wasm");
}

async fn readiness(server: &TestServer) -> Value {
    let r = server.http.get(server.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a plugin's faults never fail readiness");
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["status"], "ready", "{report}");
    report
}

/// `portcullis_plugin_healthy` of `plugin`, as the metrics listener shows it.
async fn healthy_gauge(server: &TestServer, plugin: &str) -> Option<f64> {
    let text = crate::metrics::scrape(server).await;
    crate::metrics::value(&text, "portcullis_plugin_healthy", &[("plugin", plugin)])
}

async fn client_credentials(server: &TestServer, client: (&str, &str), scope: &str) -> (StatusCode, Value) {
    server.form("/token", &[("grant_type", "client_credentials"), ("scope", scope)], Some(client)).await
}

fn claims(token: &Value) -> Value {
    use base64::Engine;
    let part = token["access_token"].as_str().expect("an access token").split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_policy_faulting_n_times_in_a_row_is_unhealthy_denies_and_recovers_on_success_or_reload() {
    const PLUGIN: &str = "scope-faulty-deny";
    let policies = support::policies_copy();
    install_faulty(policies.path(), PLUGIN, "[on-fault]\nafter = 3\n");
    let server = TestServer::start_with(Options {
        policies: Some(policies.path().into()),
        watch: true,
        metrics: true,
        ..Default::default()
    })
    .await;
    let (id, secret) = server
        .client(json!({"name": "faulty", "grant_types": ["client_credentials"], "scopes": ["ok", "trap", "loop"],
                       "scope_policy": PLUGIN}))
        .await;
    let secret = secret.unwrap();
    let client = (id.as_str(), secret.as_str());
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "ok");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(1.0), "a loaded plugin is healthy");

    // Each fault is the policy's denial (a client's own grant: invalid_scope), never a 500.
    let fault = |scope: &'static str| {
        let server = &server;
        async move {
            let (status, body) = client_credentials(server, client, scope).await;
            assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")), "{body}");
            let description = body["error_description"].as_str().unwrap_or_default();
            assert!(description.contains(PLUGIN) && description.contains("failed"), "{body}");
        }
    };
    let answer = || async {
        let (status, body) = client_credentials(&server, client, "ok").await;
        assert_eq!((status, body["scope"].as_str()), (StatusCode::OK, Some("ok")), "{body}");
    };

    // Two faults, an answer, two faults: never three in a row.
    fault("trap").await;
    fault("loop").await;
    answer().await;
    fault("trap").await;
    fault("trap").await;
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "ok", "an answer set the count back");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(1.0));

    // The third in a row: unhealthy, named in a degraded part; the replica stays ready.
    fault("loop").await;
    let report = readiness(&server).await;
    let faults = part(&report, "faults");
    assert_eq!(faults["state"], "degraded", "{report}");
    let detail = faults["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("`{PLUGIN}`")) && detail.contains("refused"), "{detail}");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(0.0));
    fault("trap").await;

    // Its next answer recovers it.
    answer().await;
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "ok");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(1.0));

    // Unhealthy again; a new version of the plugin starts healthy.
    for _ in 0..3 {
        fault("trap").await;
    }
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "degraded");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(0.0));
    install_faulty(policies.path(), PLUGIN, "[on-fault]\nafter = 4\n");
    let since = std::time::Instant::now();
    while server.app.host.loaded().get(PLUGIN).is_none_or(|p| p.manifest.on_fault.after != 4) {
        assert!(since.elapsed() < Duration::from_secs(10), "the new version never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "ok", "a reload starts the count anew");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(1.0));
    fault("trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulted_call_of_a_scope_policy_with_a_fallback_is_answered_by_the_fallback() {
    const PLUGIN: &str = "scope-faulty-fallback";
    let policies = support::policies_copy();
    install_faulty(policies.path(), PLUGIN, "[on-fault]\nafter = 2\nfallback = \"scope-template\"\n");
    let server =
        TestServer::start_with(Options { policies: Some(policies.path().into()), metrics: true, ..Default::default() })
            .await;
    let (id, secret) = server
        .client(json!({"name": "faulty", "grant_types": ["client_credentials"], "scopes": ["ok", "trap"],
                       "scope_policy": PLUGIN}))
        .await;
    let secret = secret.unwrap();
    let client = (id.as_str(), secret.as_str());

    // scope-template answers what scope-chaos trapped on: no `policy` claim of chaos's.
    for n in 1..=2 {
        let (status, body) = client_credentials(&server, client, "ok trap").await;
        assert_eq!(status, StatusCode::OK, "fault {n}: {body}");
        assert_eq!(body["scope"], "ok trap", "{body}");
        assert!(claims(&body).get("policy").is_none(), "the fallback answered: {body}");
    }
    let report = readiness(&server).await;
    let faults = part(&report, "faults");
    assert_eq!(faults["state"], "degraded", "{report}");
    let detail = faults["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("`{PLUGIN}`")) && detail.contains("`scope-template`"), "{detail}");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(0.0));

    // Still asked first: its answer recovers it.
    let (status, body) = client_credentials(&server, client, "ok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(claims(&body)["policy"], "chaos", "the plugin itself answered: {body}");
    assert_eq!(part(&readiness(&server).await, "faults")["state"], "ok");
    assert_eq!(healthy_gauge(&server, PLUGIN).await, Some(1.0));
}

#[tokio::test]
async fn an_on_fault_table_that_cannot_hold_is_refused_at_load_with_its_reason() {
    let policies = support::policies_copy();
    let bad = [
        ("faulty-self", "[on-fault]\nfallback = \"faulty-self\"\n", "names the plugin itself"),
        ("faulty-zero", "[on-fault]\nafter = 0\n", "on-fault.after must be 1..=1000"),
        ("faulty-many", "[on-fault]\nafter = 1001\n", "on-fault.after must be 1..=1000"),
        ("faulty-unknown", "[on-fault]\nretry = true\n", "unknown field"),
        ("faulty-kind", "[on-fault]\nfallback = \"consent-default\"\n", "`consent-default` is a consent-ui plugin"),
    ];
    for (name, extra, _) in bad {
        install_faulty(policies.path(), name, extra);
    }
    let server = TestServer::start_with(Options { policies: Some(policies.path().into()), ..Default::default() }).await;
    let loaded = server.app.host.loaded();
    let wasm = std::fs::read(support::fixtures_dir().join("scope-chaos.wasm")).unwrap();
    for (name, _, reason) in bad {
        assert!(!loaded.contains_key(name), "{name} is refused");
        let manifest = std::fs::read_to_string(policies.path().join(format!("{name}.toml"))).unwrap();
        let refusal = match server.app.host.prepare(&manifest, name, &wasm) {
            Err(refusal) => refusal,
            Ok(plugin) => server.app.host.install(plugin).await.expect_err(name),
        };
        assert!(refusal.contains(reason), "{name}: {refusal}");
    }
    // Only scope policies and consent UIs have a fallback.
    let storage = std::fs::read_to_string(support::policies_dir().join("storage-sql.toml")).unwrap();
    let storage = format!("{storage}\n[on-fault]\nfallback = \"other-storage\"\n");
    let refusal = server.app.host.prepare(&storage, "storage-sql", b"").err().expect("refused");
    assert!(refusal.contains("a storage plugin has none"), "{refusal}");
}

// --- the binary --------------------------------------------------------------------------

/// `portcullis serve` from a configuration file in a temporary directory, on a port of its
/// own choosing (read from its log), its standard error to a file; killed when dropped.
struct Serving {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A configuration file for `serve`: SQLite in `dir`, the test policies, `server` added to
/// the `[server]` table (a port of its own choosing unless it says `listen`).
fn config_file(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("portcullis.toml");
    let listen = if server.contains("listen") { "" } else { "listen = \"127.0.0.1:0\"" };
    let text = format!(
        "[server]\n{listen}\ndata_dir = {data:?}\nadmin_token = {ADMIN_TOKEN:?}\n{server}\n\
         [policies]\ndir = {policies:?}\nwatch = false\n",
        data = dir.join("data"),
        policies = support::policies_dir(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn portcullis(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).current_dir(dir);
    cmd
}

impl Serving {
    async fn start(server: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = config_file(dir.path(), server);
        let log = dir.path().join("serve.log");
        let child = portcullis(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut serving =
            Self { child, addr: SocketAddr::from(([0, 0, 0, 0], 0)), log, http: reqwest::Client::new(), _dir: dir };
        for _ in 0..600 {
            assert!(serving.child.try_wait().unwrap().is_none(), "the server exited: {}", serving.log_text());
            if let Some(addr) = serving.listening() {
                serving.addr = addr;
                if let Ok(r) = serving.http.get(serving.url("/health/ready")).send().await
                    && r.status() == StatusCode::OK
                {
                    return serving;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server did not come up: {}", serving.log_text());
    }

    /// The address its log says it serves on.
    fn listening(&self) -> Option<SocketAddr> {
        let log = self.log_text();
        let line = log.lines().find(|l| l.contains("serving") && l.contains("address="))?;
        let (_, rest) = line.split_once("address=")?;
        rest.split_whitespace().next()?.parse().ok()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once it holds `needle` (or after 5 s): lines are written by a thread of their
    /// own, moments after they are logged, in the order they were.
    async fn log_with(&self, needle: &str) -> String {
        for _ in 0..100 {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.log_text()
    }

    /// A confidential client for the client credentials grant: (id, secret).
    async fn client(&self) -> (String, String) {
        let r = self
            .http
            .post(self.url("/admin/v1/clients"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"name": "svc", "grant_types": ["client_credentials"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let v: Value = r.json().await.unwrap();
        (v["client_id"].as_str().unwrap().to_owned(), v["client_secret"].as_str().unwrap().to_owned())
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) with the id of the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the process to exit (a stop takes at most its grace, 10 s by default).
    async fn exit_status(&mut self) -> std::process::ExitStatus {
        for _ in 0..1200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server did not exit: {}", self.log_text());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads an HTTP/1.1 answer to its end (the server closes the connection): its status and text.
async fn answer(stream: &mut TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    stream.read_to_end(&mut text).await.expect("an answer, not a reset");
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    (status, text)
}

#[tokio::test]
async fn sigterm_fails_readiness_closes_the_listener_answers_what_is_in_flight_and_exits_0() {
    let mut server = Serving::start("").await;
    let (id, secret) = server.client().await;
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let body = "grant_type=client_credentials";
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: Basic {basic}\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    // A token request in flight: its head and half its body sent.
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(&body.as_bytes()[..body.len() / 2]).await.unwrap();
    // A second connection, open before the stop, whose request has begun: its request line
    // sent. (A connection that has sent nothing yet is closed by the stop.)
    let mut open = TcpStream::connect(server.addr).await.unwrap();
    open.write_all(b"GET /health/ready HTTP/1.1\r\n").await.unwrap();
    // Time for the server to read what was sent (an answer waits for the rest of it).
    tokio::time::sleep(Duration::from_millis(500)).await;

    server.signal(libc::SIGTERM);
    // The listener closes: new connections are refused.
    let mut refused = false;
    for _ in 0..400 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(refused, "the listener still accepts: {}", server.log_text());
    // Readiness fails, naming the stop.
    open.write_all(format!("Host: {}\r\n\r\n", server.addr).as_bytes()).await.unwrap();
    let (status, text) = answer(&mut open).await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("\"draining\"") && text.contains("failing"), "{text}");
    // The request in flight is answered.
    in_flight.write_all(&body.as_bytes()[body.len() / 2..]).await.unwrap();
    let (status, text) = answer(&mut in_flight).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("access_token"), "{text}");

    let status = server.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.log_text());
}

/// A relying party's back-channel logout endpoint that refuses its first delivery (503) and
/// takes the next: each delivery's body is sent on the channel as it arrives.
async fn relying_party() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as much body as it announces.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let status = if std::mem::take(&mut first) { "503 Service Unavailable" } else { "200 OK" };
            let answer = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_the_back_channel_logouts_pending() {
    let (rp, mut deliveries) = relying_party().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Serving::start(&format!(
        "listen = \"127.0.0.1:{port}\"\nissuer = \"http://127.0.0.1:{port}\"\n[outbound]\nallow_loopback_http = true"
    ))
    .await;
    const REDIRECT: &str = "https://rp.example.com/callback";
    let admin =
        |path: &str, body: Value| server.http.post(server.url(path)).bearer_auth(ADMIN_TOKEN).json(&body).send();
    let user = json!({"username": "lou", "password": "lou password 1", "email": "lou@example.com", "name": "Lou"});
    assert_eq!(admin("/admin/v1/users", user).await.unwrap().status(), StatusCode::CREATED);
    let client = json!({"name": "rp", "redirect_uris": [REDIRECT], "scopes": ["openid"], "skip_consent": true,
                        "backchannel_logout_uri": format!("http://{rp}/backchannel")});
    let client: Value = admin("/admin/v1/clients", client).await.unwrap().json().await.unwrap();
    let (id, secret) = (client["client_id"].as_str().unwrap(), client["client_secret"].as_str().unwrap());

    let browser = support::Browser::new();
    let mut url = url::Url::parse(&server.url("/authorize")).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("response_type", "code"),
        ("client_id", id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
    ]);
    let back = browser.authorize(url.as_str(), "lou", "lou password 1").await;
    let code = support::query(&back, "code").expect("a code");
    let r = server
        .http
        .post(server.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
        .send()
        .await
        .unwrap();
    let tokens: Value = r.json().await.unwrap();
    let id_token = tokens["id_token"].as_str().expect("an ID token");

    // The person signs out; the server is stopped at once. The relying party refuses the
    // first delivery; the second, a second later, is made before the process exits.
    let mut logout = url::Url::parse(&server.url("/logout")).unwrap();
    logout.query_pairs_mut().append_pair("id_token_hint", id_token);
    assert_eq!(browser.get(logout.as_str()).await.status(), StatusCode::OK);
    server.signal(libc::SIGTERM);
    let status = server.exit_status().await;
    assert_eq!(status.code(), Some(0), "{status:?}: {}", server.log_text());
    let mut delivered = Vec::new();
    while let Ok(body) = deliveries.try_recv() {
        delivered.push(body);
    }
    assert_eq!(delivered.len(), 2, "refused, then delivered: {delivered:?}\n{}", server.log_text());
    assert!(delivered.iter().all(|d| d.contains("logout_token=")), "{delivered:?}");
}

// --- the access log ----------------------------------------------------------------------

/// A token request with the secret in the body, and an authorization request with a query.
async fn traffic(server: &Serving) -> (String, String) {
    let (id, secret) = server.client().await;
    let r = server
        .http
        .post(server.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let r = server.http.get(server.url("/authorize?client_id=someone&state=query-marker-7431")).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let r = server.http.get(server.url(&format!("/admin/v1/clients/{id}"))).bearer_auth(ADMIN_TOKEN).send().await;
    assert!(r.unwrap().status().is_success());
    (id, format!("{secret} {token}"))
}

#[tokio::test]
async fn one_access_line_per_request_names_route_and_client_never_a_secret_or_query() {
    let server = Serving::start("").await;
    let (id, secrets) = traffic(&server).await;
    // Every line up to the last request's.
    let log = server.log_with("route=\"/admin/v1/clients/{id}\"").await;
    let access: Vec<&str> = log.lines().filter(|l| l.contains("portcullis::access")).collect();
    let token_lines: Vec<&&str> = access.iter().filter(|l| l.contains("route=\"/token\"")).collect();
    assert_eq!(token_lines.len(), 1, "{log}");
    let line = token_lines[0];
    for field in ["method=POST", "status=200", "latency_ms=", "request_id=", &format!("client_id=\"{id}\"")] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(
        access.iter().any(|l| l.contains("route=\"/admin/v1/clients/{id}\"")),
        "the route's template, not its path: {log}"
    );
    let with_id = format!("/admin/v1/clients/{id}");
    assert!(!access.iter().any(|l| l.contains(&with_id)), "no access line with an id in its path: {log}");
    assert!(access.iter().any(|l| l.contains("route=\"/authorize\"")), "{log}");
    for secret in secrets.split(' ') {
        assert!(!log.contains(secret), "a secret or token in the log: {log}");
    }
    assert!(!log.contains("query-marker-7431"), "a query string in the log: {log}");
    assert!(!log.contains('\x1b'), "ANSI escapes in a log file: {log:?}");
}

#[tokio::test]
async fn access_log_false_writes_no_access_line() {
    let server = Serving::start("access_log = false").await;
    traffic(&server).await;
    // Every line up to the last request's audit event (which names the route's template).
    let last = "route:GET /admin/v1/clients/{id}";
    let log = server.log_with(last).await;
    assert!(log.contains(last), "{log}");
    assert!(!log.contains("portcullis::access"), "{log}");
}

// --- trusted proxies ---------------------------------------------------------------------

/// Password grant attempts with a wrong password, as sent through a proxy for `forwarded_for`:
/// the statuses.
async fn attempts(server: &TestServer, client: (&str, &str), forwarded_for: &str, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let r = server
            .http
            .post(server.url("/token"))
            .basic_auth(client.0, Some(client.1))
            .header("x-forwarded-for", forwarded_for)
            .form(&[("grant_type", "password"), ("username", &format!("nobody{i}")), ("password", "guess")])
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    statuses
}

async fn throttled_server(trusted: &'static [&'static str]) -> (TestServer, String, String) {
    let server = TestServer::start_with(Options {
        configure: Some(Box::new(move |c| {
            c.server.sign_in_attempts_per_address_per_minute = 2;
            c.server.trusted_proxies =
                trusted.iter().map(|t| portcullis::config::Network(t.parse().unwrap())).collect();
        })),
        ..Default::default()
    })
    .await;
    let (id, secret) = server.client(json!({"name": "app", "grant_types": ["password"]})).await;
    (server, id, secret.unwrap())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_sign_in_budget() {
    let (server, id, secret) = throttled_server(&["127.0.0.0/8"]).await;
    let client = (id.as_str(), secret.as_str());
    let (wrong, throttled) = (StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempts(&server, client, "203.0.113.1", 3).await, [wrong, wrong, throttled]);
    // Another client behind the same proxy has a budget of its own...
    assert_eq!(attempts(&server, client, "198.51.100.2, 127.0.0.1", 1).await, [wrong]);
    // ...and the same client, through another chain, shares its budget.
    assert_eq!(attempts(&server, client, "203.0.113.1", 1).await, [throttled]);
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let (server, id, secret) = throttled_server(&[]).await;
    let client = (id.as_str(), secret.as_str());
    let (wrong, throttled) = (StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(attempts(&server, client, "203.0.113.1", 2).await, [wrong, wrong]);
    assert_eq!(attempts(&server, client, "198.51.100.2", 1).await, [throttled], "one budget: the peer's");
}

// --- start-up errors ---------------------------------------------------------------------

/// Runs `serve` with `cmd` until it exits: the exit code and standard error.
fn failed_start(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd.arg("serve").stdout(Stdio::null()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The line `portcullis:` starts: what main shows.
fn error_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("portcullis:")).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0]
}

#[test]
fn a_configured_policies_dir_that_does_not_exist_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("polices-typo");
    // In the configuration file...
    let config = config_file(dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    let policies = format!("dir = {:?}", support::policies_dir());
    std::fs::write(&config, text.replace(&policies, &format!("dir = {missing:?}"))).unwrap();
    let mut cmd = portcullis(dir.path());
    cmd.arg("--config").arg(&config);
    let (code, stderr) = failed_start(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains("policies.dir") && line.contains("polices-typo"), "{line}");
    // ...and in the environment.
    let mut cmd = portcullis(dir.path());
    cmd.arg("--config").arg(config_file(dir.path(), "")).env("PORTCULLIS_POLICIES__DIR", &missing);
    let (code, stderr) = failed_start(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains("polices-typo") && line.contains("PORTCULLIS_"), "{line}");
}

#[tokio::test]
async fn without_a_policies_dir_configured_the_built_in_policies_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = portcullis(dir.path())
        .env("PORTCULLIS_SERVER__LISTEN", "127.0.0.1:0")
        .env("PORTCULLIS_SERVER__DATA_DIR", &data)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .spawn()
        .unwrap();
    let mut served = false;
    for _ in 0..1200 {
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
        if log.contains("serving") {
            served = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(served, "{log}");
    assert!(log.contains("using the built-in policies"), "{log}");
}

#[test]
fn an_unreachable_database_is_named_by_its_host_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = portcullis(dir.path());
    cmd.arg("--config")
        .arg(config_file(dir.path(), ""))
        .env("PORTCULLIS_DATABASE__URL", format!("postgres://portcullis:hunter2@127.0.0.1:{port}/portcullis"));
    let (code, stderr) = failed_start(cmd);
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.to_lowercase().contains("refused"), "the cause: {line}");
    assert!(!stderr.contains("hunter2"), "no password: {stderr}");
}

#[tokio::test]
async fn a_busy_port_is_named() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = portcullis(dir.path());
    cmd.arg("--config").arg(config_file(dir.path(), "")).env("PORTCULLIS_SERVER__LISTEN", address.to_string());
    let (code, stderr) = tokio::task::spawn_blocking(move || failed_start(cmd)).await.unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains(&address.to_string()) && line.to_lowercase().contains("in use"), "{line}");
}
