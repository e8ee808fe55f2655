//! Load benchmark: starts the release `portcullis` binary on a loopback port and drives it
//! with a concurrent HTTP client in this process, then times one scope-policy plugin call.
//!
//!     cargo bench -p portcullis --bench load -- [seconds-per-scenario] [concurrency]
//!
//! Scenarios: client credentials (JWT access token), introspection, a full authorization
//! code flow with an existing session and remembered consent (authorize → code → token).
//!
//! With `--against-node-oidc-provider` (or `PORTCULLIS_BENCH_NODE=1`) the same run also
//! starts node-oidc-provider (`benches/node-oidc-provider/run.sh`, which installs it with npm)
//! and drives client credentials and introspection against it with the same load generator,
//! concurrency and duration (after 3 s of unmeasured warm-up for its JIT), then prints both
//! throughputs and their ratio.
//!
//! With `--metrics` the server runs with metrics on (`server.metrics_listen` on a loopback
//! port), every request recorded; the run ends by scraping `/metrics` once. With
//! `--client-credentials-only` only the first scenario runs (for many short alternating runs);
//! with `--plugin-calls-only` only the plugin calls are timed, with no server.
//!
//! The plugin calls: the built-in `scope-template` (Rust) and the test policy `scope-js`
//! (JavaScript), then the example policy `scope-by-role` in Rust, JavaScript and Python
//! (`examples/policies/`, or `PORTCULLIS_BENCH_EXAMPLES`); one that does not load is named
//! with the reason instead of a figure.
//!
//! Each scenario also reports the CPU time the server process spent per request (user and
//! system, from `/proc/<pid>/stat`, in clock ticks): on a loopback run where the load
//! generator shares the CPUs, it varies far less between runs than the throughput does, and
//! it is what a cost on the server's side adds to.
//!
//! `PORTCULLIS_BENCH_POLICIES` names the policies directory the benchmarked server serves
//! from (default `../policies`; a relative path is relative to `core/`, where cargo runs
//! benchmarks).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-token";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

struct Server {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
    /// The metrics listener's base URL, when metrics are on.
    metrics: Option<String>,
}

impl Server {
    /// The CPU time (user and system, every thread) the server process has used so far.
    fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name (which may hold spaces, but ends with `)`):
        // utime and stime are the 14th and 15th fields of the whole line.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
    }

    /// Runs a scenario and puts the server's CPU time during it in its statistics.
    async fn measured(&self, scenario: impl std::future::Future<Output = Stats>) -> Stats {
        let before = self.cpu_time();
        let mut stats = scenario.await;
        stats.server_cpu = before.zip(self.cpu_time()).map(|(b, a)| a.saturating_sub(b));
        stats
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

/// The policies directory the benchmarked server serves from.
fn policies_dir() -> PathBuf {
    std::env::var_os("PORTCULLIS_BENCH_POLICIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
}

fn start_server(metrics: bool) -> Server {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let policies = policies_dir();
    let mut command = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    // The server reads every other `PORTCULLIS_*` variable as configuration and refuses
    // unknown keys; this benchmark's own variables are not for it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PORTCULLIS_BENCH_") {
            command.env_remove(key);
        }
    }
    command
        .arg("serve")
        .env("PORTCULLIS_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("PORTCULLIS_SERVER__ISSUER", &base)
        .env("PORTCULLIS_SERVER__DATA_DIR", data.path())
        .env("PORTCULLIS_SERVER__ADMIN_TOKEN", ADMIN)
        .env("PORTCULLIS_POLICIES__DIR", policies)
        .env("RUST_LOG", "warn");
    let metrics = metrics.then(|| {
        let address = format!("127.0.0.1:{}", free_port());
        command.env("PORTCULLIS_SERVER__METRICS_LISTEN", &address);
        format!("http://{address}")
    });
    let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("start portcullis");
    Server { child, base, _data: data, metrics }
}

/// node-oidc-provider, run by `benches/node-oidc-provider/run.sh` on a loopback port.
struct NodeProvider {
    child: Child,
    base: String,
    /// `oidc-provider <version> node <version>`, as the provider announced itself.
    versions: String,
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts node-oidc-provider with one confidential client and waits for it to listen (the
/// first run installs it and Node with npm, hence the long wait).
fn start_node_provider(client_id: &str, client_secret: &str) -> NodeProvider {
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node-oidc-provider/run.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .arg("--port")
        .arg(port.to_string())
        .env("OIDC_BENCH_CLIENT_ID", client_id)
        .env("OIDC_BENCH_CLIENT_SECRET", client_secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start benches/node-oidc-provider/run.sh (needs bash, npm and node)");
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready, announced) = std::sync::mpsc::channel();
    // Reads the `listening …` line, then keeps the pipe drained; anything else the provider
    // prints goes to stderr.
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match line.strip_prefix("listening ") {
                Some(rest) if ready.is_some() => {
                    let _ = ready.take().expect("checked").send(rest.to_owned());
                }
                _ => eprintln!("node-oidc-provider: {line}"),
            }
        }
    });
    let line = match announced.recv_timeout(Duration::from_secs(900)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node-oidc-provider did not start; run.sh's output above says why");
        }
    };
    let (base, versions) = line.split_once(' ').expect("`listening <issuer> <versions>`");
    NodeProvider { child, base: base.to_owned(), versions: versions.to_owned() }
}

struct Stats {
    count: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// The server process's CPU time while the scenario ran, where it could be read.
    server_cpu: Option<Duration>,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn report(&mut self, name: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            self.latencies
                .get(((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let cpu = match self.server_cpu {
            Some(cpu) if self.count > 0 => {
                format!("   server CPU {:>6.1} µs/req", cpu.as_secs_f64() * 1e6 / self.count as f64)
            }
            _ => String::new(),
        };
        println!(
            "{name:<40} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms{cpu}   ({} requests, {} errors)",
            self.throughput(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.count,
            self.errors
        );
    }
}

/// Runs `op` from `concurrency` tasks for `duration`; `op` returns whether it succeeded.
async fn drive<F, Fut>(duration: Duration, concurrency: usize, op: F) -> Stats
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if !op().await {
                    errors += 1;
                }
                lat.push(t.elapsed());
            }
            (lat, errors)
        }));
    }
    let mut stats = Stats { count: 0, errors: 0, elapsed: Duration::ZERO, latencies: Vec::new(), server_cpu: None };
    for t in tasks {
        let (lat, errors) = t.await.expect("task");
        stats.count += lat.len();
        stats.errors += errors;
        stats.latencies.extend(lat);
    }
    stats.elapsed = start.elapsed();
    stats
}

/// Client credentials with client_secret_basic, as a client of an API would ask.
async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    id: &str,
    secret: &str,
    duration: Duration,
    concurrency: usize,
) -> Stats {
    let (h, u, i, s) = (http.clone(), token_url.to_owned(), id.to_owned(), secret.to_owned());
    drive(duration, concurrency, move || {
        let req =
            h.post(&u).basic_auth(&i, Some(&s)).form(&[("grant_type", "client_credentials"), ("scope", "api.read")]);
        async move { matches!(req.send().await, Ok(r) if r.status().is_success()) }
    })
    .await
}

/// Introspection of one live token by the client it was issued to; a request succeeds when
/// the token reads as active.
async fn introspection(
    http: &reqwest::Client,
    url: &str,
    id: &str,
    secret: &str,
    token: &str,
    duration: Duration,
    concurrency: usize,
) -> Stats {
    let (h, u, i, s, token) = (http.clone(), url.to_owned(), id.to_owned(), secret.to_owned(), token.to_owned());
    drive(duration, concurrency, move || {
        let req = h.post(&u).basic_auth(&i, Some(&s)).form(&[("token", token.as_str())]);
        async move {
            match req.send().await {
                Ok(r) => r.json::<Value>().await.map(|v| v["active"] == true).unwrap_or(false),
                Err(_) => false,
            }
        }
    })
    .await
}

/// The JOSE header of a compact JWS, if `token` is one.
fn jose_header(token: &str) -> Option<Value> {
    use base64::Engine;
    let header = token.split('.').next()?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?).ok()
}

/// One line of the side-by-side summary.
fn compare(name: &str, portcullis: &Stats, node: &Stats, note: &str) {
    let mut line = format!(
        "{name:<40} portcullis {:>7.0} req/s   node-oidc-provider {:>7.0} req/s   ratio {:>5.2}×   {note}",
        portcullis.throughput(),
        node.throughput(),
        portcullis.throughput() / node.throughput()
    );
    if portcullis.errors + node.errors > 0 {
        line += &format!(
            "   WITH ERRORS (portcullis {}, node-oidc-provider {}): failed requests count in the throughput",
            portcullis.errors, node.errors
        );
    }
    println!("{}", line.trim_end());
}

fn query(location: &str, key: &str) -> Option<String> {
    url::Url::parse(location).ok()?.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let against_node = std::env::args().any(|a| a == "--against-node-oidc-provider")
        || std::env::var("PORTCULLIS_BENCH_NODE").is_ok_and(|v| !v.is_empty() && v != "0");
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let with_metrics = std::env::args().any(|a| a == "--metrics");
    let client_credentials_only = std::env::args().any(|a| a == "--client-credentials-only");
    if std::env::args().any(|a| a == "--plugin-calls-only") {
        plugin_call_cost();
        return;
    }
    let duration = Duration::from_secs(seconds);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let server = start_server(with_metrics);
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(256).build().unwrap();
        for _ in 0..200 {
            if http.get(format!("{}/health", server.base)).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = |path: &str, body: Value| {
            let http = http.clone();
            let url = format!("{}{path}", server.base);
            async move { http.post(url).bearer_auth(ADMIN).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        println!("portcullis load benchmark: {seconds} s per scenario, {concurrency} concurrent clients, 2-core loopback");
        if std::env::var_os("PORTCULLIS_BENCH_POLICIES").is_some() {
            println!("policies: {}", policies_dir().display());
        }

        // node-oidc-provider with its own confidential client, started before anything is
        // measured; its endpoints come from its discovery document.
        let node = against_node.then(|| {
            let secret = portcullis::crypto::random_token(32);
            (start_node_provider("bench", &secret), "bench".to_owned(), secret)
        });
        let node_endpoints = match &node {
            Some((provider, ..)) => {
                let discovery: Value = http.get(format!("{}/.well-known/openid-configuration", provider.base)).send().await.unwrap().json().await.unwrap();
                let endpoint = |key: &str| discovery[key].as_str().unwrap_or_else(|| panic!("node-oidc-provider discovery has no {key}")).to_owned();
                println!("node-oidc-provider: {} on {}, one process, in-memory adapter", provider.versions, provider.base);
                Some((endpoint("token_endpoint"), endpoint("introspection_endpoint")))
            }
            None => None,
        };
        // node-oidc-provider's JIT compiles its hot paths while it runs: from cold, its first
        // two seconds under this load run at a third to a half of its later throughput. Each
        // of its scenarios follows 3 s of the same load, unmeasured; Portcullis' scenarios
        // stay as they are without the flag, so this only favours node-oidc-provider.
        let warm_up = Duration::from_secs(3);
        let mut side_by_side = Vec::new();

        // Client credentials.
        let cc = admin("/admin/v1/clients", json!({"name": "bench", "grant_types": ["client_credentials"], "scopes": ["api.read", "api.write"]})).await;
        let (id, secret) = (cc["client_id"].as_str().unwrap().to_owned(), cc["client_secret"].as_str().unwrap().to_owned());
        let token_url = format!("{}/token", server.base);
        let mut stats = server.measured(client_credentials(&http, &token_url, &id, &secret, duration, concurrency)).await;
        stats.report("client credentials (ES256 JWT)");
        if client_credentials_only {
            return;
        }
        if let (Some((_, nid, nsecret)), Some((ntoken_url, _))) = (&node, &node_endpoints) {
            // The same request must give an RFC 9068 access token signed ES256 there too.
            let token: Value = http.post(ntoken_url).basic_auth(nid, Some(nsecret)).form(&[("grant_type", "client_credentials"), ("scope", "api.read")]).send().await.unwrap().json().await.unwrap();
            let header = token["access_token"].as_str().and_then(jose_header);
            assert!(
                header.as_ref().is_some_and(|h| h["alg"] == "ES256" && h["typ"] == "at+jwt"),
                "node-oidc-provider did not issue an ES256 JWT access token: {token}"
            );
            client_credentials(&http, ntoken_url, nid, nsecret, warm_up, concurrency).await;
            let mut node_stats = client_credentials(&http, ntoken_url, nid, nsecret, duration, concurrency).await;
            node_stats.report("  node-oidc-provider (ES256 JWT)");
            side_by_side.push(("client credentials (ES256 JWT)", stats, node_stats, ""));
        }

        // Introspection of one live token.
        let token: Value = http.post(&token_url).basic_auth(&id, Some(&secret)).form(&[("grant_type", "client_credentials")]).send().await.unwrap().json().await.unwrap();
        let access = token["access_token"].as_str().unwrap().to_owned();
        let mut stats = server.measured(introspection(&http, &format!("{}/introspect", server.base), &id, &secret, &access, duration, concurrency)).await;
        stats.report("introspection");
        if let (Some((_, nid, nsecret)), Some((ntoken_url, nintrospect_url))) = (&node, &node_endpoints) {
            // node-oidc-provider refuses to introspect the JWT access tokens it issues
            // (`unsupported_token_type`: they are self-contained and not stored), so it
            // introspects an opaque access token for the same API, which it keeps in memory.
            let token: Value = http
                .post(ntoken_url)
                .basic_auth(nid, Some(nsecret))
                .form(&[("grant_type", "client_credentials"), ("scope", "api.read"), ("resource", "urn:bench:api:opaque")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let access = token["access_token"].as_str().unwrap_or_else(|| panic!("node-oidc-provider issued no token: {token}")).to_owned();
            assert!(jose_header(&access).is_none(), "node-oidc-provider issued a JWT where an opaque token was asked for");
            introspection(&http, nintrospect_url, nid, nsecret, &access, warm_up, concurrency).await;
            let mut node_stats = introspection(&http, nintrospect_url, nid, nsecret, &access, duration, concurrency).await;
            node_stats.report("  node-oidc-provider (opaque token)");
            side_by_side.push(("introspection", stats, node_stats, "(node-oidc-provider: opaque token)"));
        }
        drop(node);

        // Full authorization code flow with a session and remembered consent.
        admin("/admin/v1/users", json!({"username": "bench", "password": "bench password", "email": "b@example.com", "name": "Bench"})).await;
        let web = admin("/admin/v1/clients", json!({"name": "web", "redirect_uris": [REDIRECT], "skip_consent": true})).await;
        let (wid, wsecret) = (web["client_id"].as_str().unwrap().to_owned(), web["client_secret"].as_str().unwrap().to_owned());
        let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let authorize = format!("{}/authorize?response_type=code&client_id={wid}&scope=openid&state=s", server.base);
        let login = browser.get(&authorize).send().await.unwrap().text().await.unwrap();
        let field = |name: &str| {
            let needle = format!("name=\"{name}\" value=\"");
            let start = login.find(&needle).map(|i| i + needle.len()).expect("hidden field");
            login[start..start + login[start..].find('"').unwrap()].to_owned()
        };
        let (interaction, csrf) = (field("interaction"), field("csrf"));
        let r = browser
            .post(format!("{}/interaction/login", server.base))
            .form(&[("interaction", interaction.as_str()), ("csrf", csrf.as_str()), ("username", "bench"), ("password", "bench password")])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "login failed: {}", r.status());
        let (b, h, a, t) = (browser.clone(), http.clone(), authorize.clone(), token_url.clone());
        let mut stats = server.measured(drive(duration, concurrency, move || {
            let (b, h, a, t, wid, wsecret) = (b.clone(), h.clone(), a.clone(), t.clone(), wid.clone(), wsecret.clone());
            async move {
                let Ok(r) = b.get(&a).send().await else { return false };
                let Some(code) = r.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| query(l, "code")) else { return false };
                let Ok(r) = h.post(&t).basic_auth(&wid, Some(&wsecret)).form(&[("grant_type", "authorization_code"), ("code", code.as_str())]).send().await else {
                    return false;
                };
                r.status().is_success()
            }
        }))
        .await;
        stats.report("authorization code flow (session, consent)");
        if let Some(metrics) = &server.metrics {
            let scrape = http.get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
            let issued = scrape.lines().filter(|l| l.starts_with("portcullis_tokens_issued_total{")).collect::<Vec<_>>();
            println!("metrics on: {} series scraped; {}", scrape.lines().filter(|l| !l.starts_with('#')).count(), issued.join("; "));
        }
        drop(server);
        if !side_by_side.is_empty() {
            println!("side by side, portcullis / node-oidc-provider:");
            for (name, portcullis, node, note) in &side_by_side {
                compare(name, portcullis, node, note);
            }
        }
    });
    if !client_credentials_only {
        plugin_call_cost();
    }
}

/// One scope-policy call on a fresh instance, measured through the host's public API.
fn plugin_call_cost() {
    use portcullis::plugin::scope::{Ask, ScopeInput};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let db =
            portcullis::plugin::database::Database::connect("sqlite::memory:", 1, std::time::Duration::from_secs(1))
                .await
                .unwrap();
        let defaults = portcullis::plugin::Defaults {
            storage: "storage-sql".into(),
            scope: "scope-template".into(),
            consent: "consent-default".into(),
        };
        let host = portcullis::plugin::PolicyHost::new(db, defaults, None).unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        portcullis::plugin::watch::load_dir(&host, &dir).await.unwrap();
        let client = portcullis::model::Client {
            id: "c".into(),
            secret_hash: None,
            organization_id: None,
            created_at: 0,
            doc: portcullis::model::ClientDocument {
                name: "bench".into(),
                scopes: vec!["openid".into(), "profile".into(), "email".into(), "api".into()],
                grant_types: vec!["authorization_code".into()],
                ..Default::default()
            },
        };
        let requested = vec!["openid".to_owned(), "email".to_owned()];
        let request = ScopeInput {
            client: &client,
            allowed_scopes: &client.doc.scopes,
            template: None,
            organization: None,
            instance: None,
            user_roles: &[],
            authentication: None,
            ask: Ask {
                user: None,
                requested: &requested,
                scope_parameter_present: true,
                grant_type: "authorization_code",
                original_scopes: None,
                acr_values: &[],
                claims_parameter: None,
            },
        };
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/policies");
        install(&host, &fixtures, "scope-js").await.unwrap();
        for (policy, label, n) in [
            ("scope-template", "scope-template plugin call (Rust guest)", 20_000),
            ("scope-js", "scope-js plugin call (JavaScript guest)", 2_000),
        ] {
            time_calls(&host, policy, label, n, &request);
        }

        // The example policy written three times, asked for a user of HR: what it grants and
        // the claim it adds are the same in each language.
        let examples = std::env::var_os("PORTCULLIS_BENCH_EXAMPLES")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies"));
        let roles = vec!["hr".to_owned()];
        let user = portcullis::model::User {
            id: "u".into(),
            username: "ada".into(),
            password_hash: String::new(),
            created_at: 0,
            doc: portcullis::model::UserDocument { roles: roles.clone(), ..Default::default() },
        };
        let requested = vec!["openid".to_owned(), "hr:read".to_owned(), "hr:write".to_owned()];
        let client = portcullis::model::Client {
            doc: portcullis::model::ClientDocument {
                scopes: ["openid", "profile", "hr:read", "hr:write", "finance:read"].map(String::from).to_vec(),
                ..client.doc.clone()
            },
            ..client.clone()
        };
        let request = ScopeInput {
            client: &client,
            allowed_scopes: &client.doc.scopes,
            user_roles: &roles,
            ask: Ask::new("authorization_code", Some(&user), &requested, true),
            ..request
        };
        for (policy, label, n) in [
            ("scope-by-role-rust", "scope-by-role-rust plugin call (Rust guest)", 20_000),
            ("scope-by-role-js", "scope-by-role-js plugin call (JavaScript guest)", 2_000),
            ("scope-by-role-py", "scope-by-role-py plugin call (Python guest)", 500),
        ] {
            match install(&host, &examples, policy).await {
                Ok(()) => time_calls(&host, policy, label, n, &request),
                Err(e) => println!("{label:<48} not measured: {e}"),
            }
        }
    });
}

/// Loads `dir/name.{toml,wasm}` into `host`.
async fn install(host: &portcullis::plugin::PolicyHost, dir: &Path, name: &str) -> Result<(), String> {
    let read = |ext: &str| std::fs::read(dir.join(format!("{name}.{ext}"))).map_err(|e| format!("{name}.{ext}: {e}"));
    let manifest = String::from_utf8(read("toml")?).map_err(|e| e.to_string())?;
    let plugin = host.prepare(&manifest, name, &read("wasm")?)?;
    host.install(plugin).await.map_err(|e| e.to_string())
}

/// Asks `policy` `n` times (after `n / 20` unmeasured calls), a fresh instance each, and
/// prints the mean, median and 99th percentile.
fn time_calls(
    host: &portcullis::plugin::PolicyHost,
    policy: &str,
    label: &str,
    n: usize,
    request: &portcullis::plugin::scope::ScopeInput<'_>,
) {
    for _ in 0..n / 20 {
        assert!(host.resolve_scope(policy, request).unwrap().is_ok());
    }
    let mut lat = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        assert!(host.resolve_scope(policy, request).unwrap().is_ok());
        lat.push(t.elapsed());
    }
    let total = start.elapsed();
    lat.sort();
    println!(
        "{label:<48} mean {:>7.1} µs   p50 {:>7.1} µs   p99 {:>7.1} µs   ({n} calls, fresh instance each)",
        total.as_secs_f64() * 1e6 / n as f64,
        lat[n / 2].as_secs_f64() * 1e6,
        lat[n * 99 / 100].as_secs_f64() * 1e6
    );
}
