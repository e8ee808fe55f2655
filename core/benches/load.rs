//! Load benchmark: starts the release `portcullis` binary on a loopback port and drives it
//! with a concurrent HTTP client in this process, then times one scope-policy plugin call.
//!
//!     cargo bench -p portcullis --bench load -- [seconds-per-scenario] [concurrency] [flags]
//!
//! Scenarios (`--only` takes a comma-separated list of their names): `cc` client credentials
//! (an ES256 JWT access token), `introspect` introspection of one token, `introspect-many`
//! of 500 distinct live tokens round robin, `userinfo`, `refresh` (each client task rotating
//! a refresh token of its own: a new refresh token, access token and ID token each time),
//! `device-poll` (500 pending device codes polled round robin: `authorization_pending` or
//! `slow_down`, a read and a write each), `code` a full authorization code flow with an
//! existing session and remembered consent (authorize → code → token), `discovery` the
//! discovery document, and `live` the liveness probe (`/health/live`: no client, signature or
//! storage, only the HTTP stack, the middleware, the access log and the metrics: the floor
//! under every other scenario). Each reports throughput, latency, the server's CPU time per
//! request and its resident memory after.
//!
//! The server runs as it ships: metrics on (on a loopback listener of their own) and the
//! access log on (written to a file), unless `--without-observability`. `--postgres` puts
//! its records in a new PostgreSQL database (at `PORTCULLIS_BENCH_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`; created and dropped by the run) instead of
//! the embedded SQLite. `--overload N` ends with client credentials from N clients at once
//! (more than the server answers at once: what it sheds, and the latency of what it admits);
//! `--soak SECONDS` with mixed traffic (client credentials, introspection of the last 500
//! tokens issued and the code flow in turn) for that long, the server's memory read every
//! 30 s, and the expired records the upkeep purged counted.
//!
//! With `--against-node-oidc-provider` (or `PORTCULLIS_BENCH_NODE=1`) the same run also
//! starts node-oidc-provider (`benches/node-oidc-provider/run.sh`, which installs it with npm)
//! and drives client credentials, introspection (one token, and 500 distinct ones) and the
//! discovery document against it with the same load generator, concurrency and duration
//! (after 3 s of unmeasured warm-up for its JIT), then prints both throughputs, both CPU
//! times per request and the ratio.
//!
//! The run ends by scraping `/metrics` once and counting the access log's lines. With
//! `--client-credentials-only` (`--only cc`) only the first scenario runs (for many short
//! alternating runs); with `--plugin-calls-only` only the plugin calls are timed, with no
//! server.
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
//! `PORTCULLIS_BENCH_SERVER` names another `portcullis` binary to start instead of this
//! build's (a build of an earlier commit, to measure a change before and after).
//!
//! `PORTCULLIS_BENCH_POLICIES` names the policies directory the benchmarked server serves
//! from (default `../policies`; a relative path is relative to `core/`, where cargo runs
//! benchmarks).

use std::future::Future;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// The CPU time (user and system, every thread) a process has used so far.
fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces, but ends with `)`):
    // utime and stime are the 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// A memory figure of a process in kB (`VmRSS` now, `VmHWM` its peak), from `/proc/<pid>/status`.
fn process_memory(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

impl Server {
    /// Runs a scenario and puts the server's CPU time during it, and its memory after, in its
    /// statistics.
    async fn measured(&self, scenario: impl Future<Output = Stats>) -> Stats {
        let pid = self.child.id();
        let before = process_cpu_time(pid);
        let mut stats = scenario.await;
        stats.server_cpu = before.zip(process_cpu_time(pid)).map(|(b, a)| a.saturating_sub(b));
        stats.rss = process_memory(pid, "VmRSS");
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

/// The release server on a loopback port; `observability`: metrics (on a listener of their
/// own) and the access log on, as they ship, the log written to `server.log` in the data
/// directory. `database`: a PostgreSQL URL instead of the embedded SQLite.
fn start_server(observability: bool, database: Option<&str>) -> Server {
    let data = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let policies = policies_dir();
    // Another build of the server (a before and an after, side by side) where one is named.
    let binary = std::env::var_os("PORTCULLIS_BENCH_SERVER").map(PathBuf::from);
    let mut command = Command::new(binary.as_deref().unwrap_or(Path::new(env!("CARGO_BIN_EXE_portcullis"))));
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
        .env("RUST_LOG", if observability { "info" } else { "warn" });
    if !observability {
        command.env("PORTCULLIS_SERVER__ACCESS_LOG", "false");
    }
    if let Some(url) = database {
        command.env("PORTCULLIS_DATABASE__URL", url);
    }
    let metrics = observability.then(|| {
        let address = format!("127.0.0.1:{}", free_port());
        command.env("PORTCULLIS_SERVER__METRICS_LISTEN", &address);
        format!("http://{address}")
    });
    let log = std::fs::File::create(data.path().join("server.log")).expect("server.log");
    let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("start portcullis");
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

/// What one request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// 503 with `Retry-After`: the server shed the request.
    Shed,
    Failed,
}

impl Outcome {
    fn of(ok: bool) -> Self {
        if ok { Outcome::Ok } else { Outcome::Failed }
    }

    /// A response that is not the one expected: shed (503 with `Retry-After`) or failed.
    fn refused(response: &reqwest::Response) -> Self {
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && response.headers().contains_key(reqwest::header::RETRY_AFTER)
        {
            Outcome::Shed
        } else {
            Outcome::Failed
        }
    }
}

/// One request of a scenario, made again and again.
type Op = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

fn op<F, Fut>(f: F) -> Op
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

struct Stats {
    count: usize,
    errors: usize,
    shed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// The server process's CPU time while the scenario ran, where it could be read.
    server_cpu: Option<Duration>,
    /// The server's resident memory when the scenario ended.
    rss: Option<u64>,
}

impl Stats {
    fn throughput(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort_unstable();
        self.latencies
            .get(((self.latencies.len() as f64 * p) as usize).min(self.latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }

    fn report(&mut self, name: &str) {
        let (p50, p99) = (self.percentile(0.50), self.percentile(0.99));
        let cpu = match self.server_cpu {
            Some(cpu) if self.count > 0 => {
                format!("   server CPU {:>6.1} µs/req", cpu.as_secs_f64() * 1e6 / self.count as f64)
            }
            _ => String::new(),
        };
        let rss = self.rss.map(|kb| format!("   RSS {:>5.1} MB", kb as f64 / 1024.0)).unwrap_or_default();
        let shed = if self.shed > 0 { format!(", {} shed (503, Retry-After)", self.shed) } else { String::new() };
        println!(
            "{name:<44} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms{cpu}{rss}   ({} requests, {} errors{shed})",
            self.throughput(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            self.count,
            self.errors
        );
    }
}

/// Runs `op` from `concurrency` tasks for `duration`.
async fn drive(duration: Duration, concurrency: usize, op: Op) -> Stats {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut shed) = (Vec::new(), 0, 0);
            while Instant::now() < deadline {
                let t = Instant::now();
                match op().await {
                    Outcome::Ok => {}
                    Outcome::Shed => shed += 1,
                    Outcome::Failed => errors += 1,
                }
                lat.push(t.elapsed());
            }
            (lat, errors, shed)
        }));
    }
    let mut stats = Stats {
        count: 0,
        errors: 0,
        shed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        server_cpu: None,
        rss: None,
    };
    for t in tasks {
        let (lat, errors, shed) = t.await.expect("task");
        stats.count += lat.len();
        stats.errors += errors;
        stats.shed += shed;
        stats.latencies.extend(lat);
    }
    stats.elapsed = start.elapsed();
    stats
}

/// Client credentials with client_secret_basic, as a client of an API would ask.
fn client_credentials(http: &reqwest::Client, token_url: &str, id: &str, secret: &str) -> Op {
    let (h, u, i, s) = (http.clone(), token_url.to_owned(), id.to_owned(), secret.to_owned());
    op(move || {
        let req =
            h.post(&u).basic_auth(&i, Some(&s)).form(&[("grant_type", "client_credentials"), ("scope", "api.read")]);
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => Outcome::Ok,
                Ok(r) => Outcome::refused(&r),
                Err(_) => Outcome::Failed,
            }
        }
    })
}

/// Introspection by the client the tokens were issued to, of `tokens` round robin; a
/// request succeeds when the token reads as active.
fn introspection(http: &reqwest::Client, url: &str, id: &str, secret: &str, tokens: Vec<String>) -> Op {
    let (h, u, i, s) = (http.clone(), url.to_owned(), id.to_owned(), secret.to_owned());
    let (tokens, next) = (Arc::new(tokens), Arc::new(AtomicUsize::new(0)));
    op(move || {
        let token = &tokens[next.fetch_add(1, Ordering::Relaxed) % tokens.len()];
        let req = h.post(&u).basic_auth(&i, Some(&s)).form(&[("token", token.as_str())]);
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    Outcome::of(r.json::<Value>().await.is_ok_and(|v| v["active"] == true))
                }
                Ok(r) => Outcome::refused(&r),
                Err(_) => Outcome::Failed,
            }
        }
    })
}

/// A GET of `url`, its body read to the end; a request succeeds on a 2xx.
fn document(http: &reqwest::Client, url: &str) -> Op {
    let (h, u) = (http.clone(), url.to_owned());
    op(move || {
        let req = h.get(&u);
        async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => Outcome::of(r.bytes().await.is_ok()),
                Ok(r) => Outcome::refused(&r),
                Err(_) => Outcome::Failed,
            }
        }
    })
}

/// `n` access tokens from client credentials.
async fn access_tokens(
    http: &reqwest::Client,
    token_url: &str,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
    n: usize,
) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let mut form = vec![("grant_type", "client_credentials"), ("scope", "api.read")];
        form.extend_from_slice(extra);
        let token: Value =
            http.post(token_url).basic_auth(id, Some(secret)).form(&form).send().await.unwrap().json().await.unwrap();
        tokens.push(token["access_token"].as_str().unwrap_or_else(|| panic!("no access token: {token}")).to_owned());
    }
    tokens
}

/// The JOSE header of a compact JWS, if `token` is one.
fn jose_header(token: &str) -> Option<Value> {
    use base64::Engine;
    let header = token.split('.').next()?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?).ok()
}

/// One line of the side-by-side summary.
fn compare(name: &str, portcullis: &Stats, node: &Stats, note: &str) {
    let per_request = |s: &Stats| {
        s.server_cpu
            .filter(|_| s.count > 0)
            .map(|c| format!(" ({:.1} µs CPU/req)", c.as_secs_f64() * 1e6 / s.count as f64))
            .unwrap_or_default()
    };
    let mut line = format!(
        "{name:<40} portcullis {:>7.0} req/s{}   node-oidc-provider {:>7.0} req/s{}   ratio {:>5.2}×   {note}",
        portcullis.throughput(),
        per_request(portcullis),
        node.throughput(),
        per_request(node),
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

/// The scenarios, by the names `--only` takes.
const SCENARIOS: &[&str] =
    &["cc", "introspect", "introspect-many", "userinfo", "refresh", "device-poll", "code", "discovery", "live"];

/// How many distinct tokens `introspect-many` asks about, round robin.
const DISTINCT_TOKENS: usize = 500;

/// A fresh PostgreSQL database for the server, dropped at the end.
struct Postgres {
    admin_url: String,
    name: String,
    url: String,
}

impl Postgres {
    async fn create() -> Self {
        let admin_url = std::env::var("PORTCULLIS_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL reachable at PORTCULLIS_BENCH_POSTGRES");
        let name = format!("portcullis_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
        admin.close().await;
        let (base, _) = admin_url.rsplit_once('/').expect("a PostgreSQL URL ends in /DATABASE");
        let url = format!("{base}/{name}");
        Postgres { admin_url, name, url }
    }

    async fn drop_database(self) {
        if let Ok(admin) = sqlx::PgPool::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&admin).await;
            admin.close().await;
        }
    }
}

fn flag_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let flags_with_values = ["--only", "--overload", "--soak"];
    let mut args = Vec::new();
    let mut skip = false;
    for a in std::env::args().skip(1) {
        if std::mem::take(&mut skip) {
            continue;
        }
        if flags_with_values.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with("--") {
            args.push(a);
        }
    }
    let flag = |name: &str| std::env::args().any(|a| a == name);
    let against_node = flag("--against-node-oidc-provider")
        || std::env::var("PORTCULLIS_BENCH_NODE").is_ok_and(|v| !v.is_empty() && v != "0");
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let observability = !flag("--without-observability");
    let postgres = flag("--postgres");
    let only: Vec<String> = match (flag_value("--only"), flag("--client-credentials-only")) {
        (Some(list), _) => list.split(',').map(str::to_owned).collect(),
        (None, true) => vec!["cc".into()],
        (None, false) => SCENARIOS.iter().map(|s| s.to_string()).collect(),
    };
    for name in &only {
        assert!(SCENARIOS.contains(&name.as_str()), "--only takes some of {SCENARIOS:?}, not {name}");
    }
    let overload: Option<usize> = flag_value("--overload").map(|n| n.parse().expect("--overload CONNECTIONS"));
    let soak: Option<u64> = flag_value("--soak").map(|n| n.parse().expect("--soak SECONDS"));
    if flag("--plugin-calls-only") {
        plugin_call_cost();
        return;
    }
    let duration = Duration::from_secs(seconds);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let database = match postgres {
            true => Some(Postgres::create().await),
            false => None,
        };
        let server = start_server(observability, database.as_ref().map(|d| d.url.as_str()));
        let pool = concurrency.max(overload.unwrap_or(0));
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(pool).build().unwrap();
        for _ in 0..400 {
            if http.get(format!("{}/health/ready", server.base)).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let admin = |path: &str, body: Value| {
            let http = http.clone();
            let url = format!("{}{path}", server.base);
            async move { http.post(url).bearer_auth(ADMIN).json(&body).send().await.unwrap().json::<Value>().await.unwrap() }
        };
        println!(
            "portcullis load benchmark: {seconds} s per scenario, {concurrency} concurrent clients, 2-core loopback, {}, {}",
            if postgres { "PostgreSQL" } else { "embedded SQLite" },
            if observability { "metrics and access log on" } else { "metrics and access log off" }
        );
        if std::env::var_os("PORTCULLIS_BENCH_POLICIES").is_some() {
            println!("policies: {}", policies_dir().display());
        }
        let runs = |name: &str| only.iter().any(|o| o == name);

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
        let node_pid = node.as_ref().map(|(provider, ..)| provider.child.id());
        // node-oidc-provider's JIT compiles its hot paths while it runs: from cold, its first
        // two seconds under this load run at a third to a half of its later throughput. Each
        // of its scenarios follows 3 s of the same load, unmeasured; Portcullis' scenarios
        // stay as they are without the flag, so this only favours node-oidc-provider.
        let warm_up = Duration::from_secs(3);
        let mut side_by_side = Vec::new();
        // Runs a scenario on node-oidc-provider too, when it is beside us.
        let node_side = async |name: &'static str, note: &'static str, op: Op, ours: Stats, side_by_side: &mut Vec<_>| {
            drive(warm_up, concurrency, op.clone()).await;
            let before = node_pid.and_then(process_cpu_time);
            let mut theirs = drive(duration, concurrency, op).await;
            theirs.server_cpu = before.zip(node_pid.and_then(process_cpu_time)).map(|(b, a)| a.saturating_sub(b));
            theirs.rss = node_pid.and_then(|pid| process_memory(pid, "VmRSS"));
            theirs.report(&format!("  node-oidc-provider ({name})"));
            side_by_side.push((name, ours, theirs, note));
        };

        let cc = admin("/admin/v1/clients", json!({"name": "bench", "grant_types": ["client_credentials"], "scopes": ["api.read", "api.write"]})).await;
        let (id, secret) = (cc["client_id"].as_str().unwrap().to_owned(), cc["client_secret"].as_str().unwrap().to_owned());
        let token_url = format!("{}/token", server.base);
        let introspect_url = format!("{}/introspect", server.base);

        if runs("cc") {
            let mut stats = server.measured(drive(duration, concurrency, client_credentials(&http, &token_url, &id, &secret))).await;
            stats.report("client credentials (ES256 JWT)");
            if let (Some((_, nid, nsecret)), Some((ntoken_url, _))) = (&node, &node_endpoints) {
                // The same request must give an RFC 9068 access token signed ES256 there too.
                let token = access_tokens(&http, ntoken_url, nid, nsecret, &[], 1).await.remove(0);
                let header = jose_header(&token);
                assert!(
                    header.as_ref().is_some_and(|h| h["alg"] == "ES256" && h["typ"] == "at+jwt"),
                    "node-oidc-provider did not issue an ES256 JWT access token: {token}"
                );
                node_side("client credentials (ES256 JWT)", "", client_credentials(&http, ntoken_url, nid, nsecret), stats, &mut side_by_side).await;
            }
        }

        for (scenario, n) in [("introspect", 1), ("introspect-many", DISTINCT_TOKENS)] {
            if !runs(scenario) {
                continue;
            }
            let name = if n == 1 { "introspection (one token)".to_owned() } else { format!("introspection ({n} distinct tokens)") };
            let tokens = access_tokens(&http, &token_url, &id, &secret, &[], n).await;
            let mut stats = server.measured(drive(duration, concurrency, introspection(&http, &introspect_url, &id, &secret, tokens))).await;
            stats.report(&name);
            if let (Some((_, nid, nsecret)), Some((ntoken_url, nintrospect_url))) = (&node, &node_endpoints) {
                // node-oidc-provider refuses to introspect the JWT access tokens it issues
                // (`unsupported_token_type`: they are self-contained and not stored), so it
                // introspects opaque access tokens for the same API, which it keeps in memory.
                let tokens = access_tokens(&http, ntoken_url, nid, nsecret, &[("resource", "urn:bench:api:opaque")], n).await;
                assert!(jose_header(&tokens[0]).is_none(), "node-oidc-provider issued a JWT where an opaque token was asked for");
                let label = if n == 1 { "introspection (one token)" } else { "introspection (500 distinct tokens)" };
                node_side(label, "(node-oidc-provider: opaque tokens)", introspection(&http, nintrospect_url, nid, nsecret, tokens), stats, &mut side_by_side).await;
            }
        }
        if runs("discovery") {
            let url = format!("{}/.well-known/openid-configuration", server.base);
            let mut stats = server.measured(drive(duration, concurrency, document(&http, &url))).await;
            stats.report("discovery document");
            if let Some((provider, ..)) = &node {
                let url = format!("{}/.well-known/openid-configuration", provider.base);
                node_side("discovery document", "", document(&http, &url), stats, &mut side_by_side).await;
            }
        }
        if runs("live") {
            let url = format!("{}/health/live", server.base);
            server.measured(drive(duration, concurrency, document(&http, &url))).await.report("liveness probe (the floor)");
        }
        drop(node);

        // A person with a session, and a web client that remembers their consent.
        admin("/admin/v1/users", json!({"username": "bench", "password": "bench password", "email": "b@example.com", "name": "Bench"})).await;
        let web = admin(
            "/admin/v1/clients",
            json!({"name": "web", "redirect_uris": [REDIRECT], "skip_consent": true,
                   "grant_types": ["authorization_code", "refresh_token"],
                   "scopes": ["openid", "profile", "email", "offline_access"]}),
        )
        .await;
        let (wid, wsecret) = (web["client_id"].as_str().unwrap().to_owned(), web["client_secret"].as_str().unwrap().to_owned());
        let browser = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).pool_max_idle_per_host(pool).build().unwrap();
        // The code flow asks for `openid` alone; the refresh tokens come from flows that ask for
        // `offline_access` too.
        let authorize = format!("{}/authorize?response_type=code&client_id={wid}&scope=openid&state=s", server.base);
        let authorize_offline = format!("{}/authorize?response_type=code&client_id={wid}&scope=openid%20profile%20email%20offline_access&state=s", server.base);
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
        // authorize → code → token, with the session and the remembered consent.
        let code_flow_for = |authorize: &str| {
            let (b, h, a, t, wid, wsecret) = (browser.clone(), http.clone(), authorize.to_owned(), token_url.clone(), wid.clone(), wsecret.clone());
            move || {
                let (b, h, a, t, wid, wsecret) = (b.clone(), h.clone(), a.clone(), t.clone(), wid.clone(), wsecret.clone());
                // The tokens, or what became of the flow: shed (either request) or failed.
                async move {
                    let r = b.get(&a).send().await.map_err(|_| Outcome::Failed)?;
                    let Some(code) = r.headers().get("location").and_then(|l| l.to_str().ok()).and_then(|l| query(l, "code")) else {
                        return Err(Outcome::refused(&r));
                    };
                    let r = h.post(&t).basic_auth(&wid, Some(&wsecret)).form(&[("grant_type", "authorization_code"), ("code", code.as_str())]).send().await.map_err(|_| Outcome::Failed)?;
                    if !r.status().is_success() {
                        return Err(Outcome::refused(&r));
                    }
                    r.json::<Value>().await.map_err(|_| Outcome::Failed)
                }
            }
        };
        let code_flow = code_flow_for(&authorize);
        let offline_flow = code_flow_for(&authorize_offline);
        let first = code_flow().await.expect("a code flow");

        if runs("userinfo") {
            let (h, u, access) = (http.clone(), format!("{}/userinfo", server.base), first["access_token"].as_str().unwrap().to_owned());
            let userinfo = op(move || {
                let req = h.get(&u).bearer_auth(&access);
                async move {
                    match req.send().await {
                        Ok(r) if r.status().is_success() => Outcome::of(r.json::<Value>().await.is_ok_and(|v| v["sub"].is_string())),
                        Ok(r) => Outcome::refused(&r),
                        Err(_) => Outcome::Failed,
                    }
                }
            });
            server.measured(drive(duration, concurrency, userinfo)).await.report("userinfo (ES256 access token)");
        }

        if runs("refresh") {
            // A refresh token per client task; each refresh rotates it (RFC 6749 §6, OAuth 2.1).
            let mut chains = Vec::new();
            for _ in 0..concurrency {
                let tokens = offline_flow().await.expect("a code flow");
                chains.push(tokens["refresh_token"].as_str().expect("a refresh token with offline_access").to_owned());
            }
            let (chains, h, t, wid, wsecret) = (Arc::new(std::sync::Mutex::new(chains)), http.clone(), token_url.clone(), wid.clone(), wsecret.clone());
            let refresh = op(move || {
                let (chains, h, t, wid, wsecret) = (chains.clone(), h.clone(), t.clone(), wid.clone(), wsecret.clone());
                async move {
                    let Some(token) = chains.lock().unwrap().pop() else { return Outcome::Failed };
                    let r = match h.post(&t).basic_auth(&wid, Some(&wsecret)).form(&[("grant_type", "refresh_token"), ("refresh_token", token.as_str())]).send().await {
                        Ok(r) => r,
                        Err(_) => return Outcome::Failed,
                    };
                    if !r.status().is_success() {
                        let outcome = Outcome::refused(&r);
                        if outcome == Outcome::Shed {
                            chains.lock().unwrap().push(token);
                        }
                        return outcome;
                    }
                    match r.json::<Value>().await.ok().and_then(|v| v["refresh_token"].as_str().map(str::to_owned)) {
                        Some(next) => {
                            chains.lock().unwrap().push(next);
                            Outcome::Ok
                        }
                        None => Outcome::Failed,
                    }
                }
            });
            server.measured(drive(duration, concurrency, refresh)).await.report("refresh (rotation, ID token)");
        }

        if runs("device-poll") {
            let device = admin("/admin/v1/clients", json!({"name": "tv", "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "scopes": ["openid"]})).await;
            let (did, dsecret) = (device["client_id"].as_str().unwrap().to_owned(), device["client_secret"].as_str().unwrap().to_owned());
            let mut codes = Vec::new();
            for _ in 0..DISTINCT_TOKENS {
                let r: Value = http.post(format!("{}/device_authorization", server.base)).basic_auth(&did, Some(&dsecret)).form(&[("scope", "openid")]).send().await.unwrap().json().await.unwrap();
                codes.push(r["device_code"].as_str().unwrap_or_else(|| panic!("no device code: {r}")).to_owned());
            }
            let (codes, next, h, t) = (Arc::new(codes), Arc::new(AtomicUsize::new(0)), http.clone(), token_url.clone());
            let poll = op(move || {
                let code = &codes[next.fetch_add(1, Ordering::Relaxed) % codes.len()];
                let req = h.post(&t).basic_auth(&did, Some(&dsecret)).form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", code.as_str())]);
                async move {
                    match req.send().await {
                        // Nobody decides: every poll is pending, or too soon (RFC 8628 §3.5).
                        Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST => Outcome::of(
                            r.json::<Value>().await.is_ok_and(|v| v["error"] == "authorization_pending" || v["error"] == "slow_down"),
                        ),
                        Ok(r) => Outcome::refused(&r),
                        Err(_) => Outcome::Failed,
                    }
                }
            });
            server.measured(drive(duration, concurrency, poll)).await.report(&format!("device poll ({DISTINCT_TOKENS} pending codes)"));
        }

        let code_op = {
            let flow = code_flow.clone();
            op(move || {
                let flow = flow.clone();
                async move { flow().await.err().unwrap_or(Outcome::Ok) }
            })
        };
        if runs("code") {
            server.measured(drive(duration, concurrency, code_op.clone())).await.report("authorization code flow (session, consent)");
        }

        if let Some(connections) = overload {
            let mut stats = server.measured(drive(duration, connections, client_credentials(&http, &token_url, &id, &secret))).await;
            stats.report(&format!("client credentials, {connections} clients"));
        }

        if let Some(soak) = soak {
            // Mixed traffic: client credentials, introspection and the code flow in turn from
            // every client, the server's memory read every 30 s. Introspection asks about the
            // last 500 tokens client credentials issued, so none expires under it however
            // long the soak.
            let issued = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
                access_tokens(&http, &token_url, &id, &secret, &[], DISTINCT_TOKENS).await,
            )));
            let issue = {
                let (h, u, i, s, issued) = (http.clone(), token_url.clone(), id.clone(), secret.clone(), issued.clone());
                op(move || {
                    let req = h.post(&u).basic_auth(&i, Some(&s)).form(&[("grant_type", "client_credentials"), ("scope", "api.read")]);
                    let issued = issued.clone();
                    async move {
                        match req.send().await {
                            Ok(r) if r.status().is_success() => match r.json::<Value>().await.ok().and_then(|v| v["access_token"].as_str().map(str::to_owned)) {
                                Some(token) => {
                                    let mut issued = issued.lock().unwrap();
                                    issued.push_back(token);
                                    if issued.len() > DISTINCT_TOKENS {
                                        issued.pop_front();
                                    }
                                    Outcome::Ok
                                }
                                None => Outcome::Failed,
                            },
                            Ok(r) => Outcome::refused(&r),
                            Err(_) => Outcome::Failed,
                        }
                    }
                })
            };
            let introspect_issued = {
                let (h, u, i, s, issued, next) = (http.clone(), introspect_url.clone(), id.clone(), secret.clone(), issued.clone(), Arc::new(AtomicUsize::new(0)));
                op(move || {
                    let token = {
                        let issued = issued.lock().unwrap();
                        issued[next.fetch_add(1, Ordering::Relaxed) % issued.len()].clone()
                    };
                    let req = h.post(&u).basic_auth(&i, Some(&s)).form(&[("token", token.as_str())]);
                    async move {
                        match req.send().await {
                            Ok(r) if r.status().is_success() => Outcome::of(r.json::<Value>().await.is_ok_and(|v| v["active"] == true)),
                            Ok(r) => Outcome::refused(&r),
                            Err(_) => Outcome::Failed,
                        }
                    }
                })
            };
            let mix = [issue, introspect_issued, code_op.clone()];
            let turn = Arc::new(AtomicUsize::new(0));
            let mixed = op(move || {
                let op = mix[turn.fetch_add(1, Ordering::Relaxed) % mix.len()].clone();
                async move { op().await }
            });
            let pid = server.child.id();
            let sampler = tokio::spawn(async move {
                let mut samples = Vec::new();
                let start = Instant::now();
                loop {
                    samples.push((start.elapsed().as_secs(), process_memory(pid, "VmRSS").unwrap_or(0)));
                    if start.elapsed() >= Duration::from_secs(soak) {
                        return samples;
                    }
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
            let mut stats = server.measured(drive(Duration::from_secs(soak), concurrency, mixed)).await;
            stats.report(&format!("soak, mixed traffic, {soak} s"));
            let samples = sampler.await.expect("sampler");
            let line = samples.iter().map(|(t, kb)| format!("{t} s {:.1}", *kb as f64 / 1024.0)).collect::<Vec<_>>().join(" · ");
            println!("  RSS over the soak (MB): {line}");
        }

        if let Some(peak) = process_memory(server.child.id(), "VmHWM") {
            println!("server peak RSS {:.1} MB", peak as f64 / 1024.0);
        }
        if let Some(metrics) = &server.metrics {
            let scrape = http.get(format!("{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
            let issued = scrape.lines().filter(|l| l.starts_with("portcullis_tokens_issued_total{")).collect::<Vec<_>>();
            println!("metrics on: {} series scraped; {}", scrape.lines().filter(|l| !l.starts_with('#')).count(), issued.join("; "));
            let storage = scrape.lines().filter(|l| l.starts_with("portcullis_storage_calls_total{") && !l.ends_with(" 0")).collect::<Vec<_>>();
            println!("storage calls: {}", storage.join("; "));
        }
        if observability {
            let log = std::fs::read_to_string(server._data.path().join("server.log")).unwrap_or_default();
            println!("access log on: {} lines written", log.lines().filter(|l| l.contains("portcullis::access")).count());
            let purged: Vec<u64> = log
                .lines()
                .filter(|l| l.contains("purged expired records"))
                .filter_map(|l| l.split("count=").nth(1)?.split_whitespace().next()?.parse().ok())
                .collect();
            let failed = log.lines().filter(|l| l.contains("purging expired records failed")).count();
            if !purged.is_empty() || failed > 0 {
                println!("upkeep purged {} expired records in {} upkeeps; {failed} purges failed", purged.iter().sum::<u64>(), purged.len());
            }
        }
        drop(server);
        if let Some(database) = database {
            database.drop_database().await;
        }
        if !side_by_side.is_empty() {
            println!("side by side, portcullis / node-oidc-provider:");
            for (name, portcullis, node, note) in &side_by_side {
                compare(name, portcullis, node, note);
            }
        }
    });
    if !flag("--client-credentials-only") && flag_value("--only").is_none() && overload.is_none() && soak.is_none() {
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
