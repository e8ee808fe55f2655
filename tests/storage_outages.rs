//! A PostgreSQL that goes away: while the server cannot reach its database, every request
//! that needs it answers at once with 503 and `temporarily_unavailable` (RFC 6749 §4.1.2.1,
//! §5.2 by analogy; the admin API with its JSON error), never a 500 after a long wait; when
//! the database is back, the server serves again by itself. A restart's in-flight errors
//! (connections closed, SQLSTATE 57P01) are 503s too.
//!
//! The server reaches PostgreSQL through a TCP proxy in the test, which cuts it off (the
//! port refuses connections, open ones are closed, as when PostgreSQL stops) and brings it back.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Browser, Options, TestServer, query};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const REDIRECT: &str = "https://rp.example.com/callback";

/// How long a request may take while the database is unreachable: the pool waits one
/// second for a connection (`database.acquire_timeout_ms`), well inside the storage
/// plugin's 5 s deadline; the rest is room for a busy machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// A TCP proxy to PostgreSQL that can be cut and restored, and can close the connections
/// it carries.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    listener: Mutex<Option<AbortHandle>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    /// Set: the connections stay open and carry nothing, as over a network that went silent.
    stalled: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let proxy = Arc::new(Self {
            addr: listener.local_addr().unwrap(),
            target,
            listener: Mutex::new(None),
            connections: Arc::default(),
            stalled: Arc::new(tokio::sync::watch::channel(false).0),
        });
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (target, connections, stalled) = (self.target, self.connections.clone(), self.stalled.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut stall = stalled.subscribe();
                let carried = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let stalled = async {
                            while !*stall.borrow_and_update() {
                                if stall.changed().await.is_err() {
                                    std::future::pending::<()>().await;
                                }
                            }
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = stalled => std::future::pending::<()>().await,
                        }
                    }
                });
                connections.lock().unwrap().push(carried.abort_handle());
            }
        });
        *self.listener.lock().unwrap() = Some(accepting.abort_handle());
    }

    /// Closes every connection the proxy carries; new ones are still accepted.
    fn close_connections(&self) {
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// The network goes silent: every connection, open or new, stays open and carries nothing.
    fn stall(&self) {
        self.stalled.send_replace(true);
    }

    fn unstall(&self) {
        self.stalled.send_replace(false);
        self.close_connections();
    }

    /// PostgreSQL as stopped: the port refuses connections, open ones are closed.
    fn cut(&self) {
        if let Some(listener) = self.listener.lock().unwrap().take() {
            listener.abort();
        }
        self.close_connections();
    }

    /// PostgreSQL back, on the same port.
    async fn restore(&self) {
        let since = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(since.elapsed() < Duration::from_secs(10), "the proxy's port stays taken: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }

    /// `url` with the proxy's address in place of PostgreSQL's.
    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.set_host(Some(&self.addr.ip().to_string())).unwrap();
        url.to_string()
    }
}

/// A fresh database, and the address of its PostgreSQL.
async fn database(tag: &str) -> (String, SocketAddr, support::DropDatabase) {
    let (url, guard) = support::fresh_postgres(tag).await;
    let parsed = url::Url::parse(&url).unwrap();
    let host = parsed.host_str().expect("a PostgreSQL host").to_owned();
    let port = parsed.port().unwrap_or(5432);
    let addr = tokio::net::lookup_host((host.as_str(), port)).await.unwrap().next().expect("an address");
    (url, addr, guard)
}

/// Ends every backend connected to `database` but `admin`'s own, as a restart of PostgreSQL
/// does (SQLSTATE 57P01 to each); whether each was ended.
async fn end_backends(admin: &sqlx::PgPool, database: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(admin)
    .await
    .expect("pg_terminate_backend")
}

/// A signed-in person, a client with its tokens, all made while the database is there.
struct Setup {
    browser: Browser,
    id: String,
    secret: String,
    access: String,
    refresh: String,
}

async fn setup(server: &TestServer) -> Setup {
    server.user("alice", "alice's password").await;
    let (id, secret) = server
        .client(json!({"name": "rp", "redirect_uris": [REDIRECT], "always_issue_refresh_token": true,
                       "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
                       "skip_consent": true}))
        .await;
    let secret = secret.unwrap();
    let browser = Browser::new();
    let back = browser.authorize(authorize_url(server, &id).as_str(), "alice", "alice's password").await;
    let code = query(&back, "code").expect("a code");
    let (status, tokens) = server.redeem((&id, &secret), &code, REDIRECT).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    Setup { browser, id, secret, access, refresh }
}

fn authorize_url(server: &TestServer, client_id: &str) -> url::Url {
    server.authorize_url(&[("response_type", "code"), ("client_id", client_id), ("scope", "openid")])
}

/// A request sent while the database is unreachable: it must answer within [`ANSWER_WITHIN`].
async fn bounded(what: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
    match tokio::time::timeout(ANSWER_WITHIN, request.send()).await {
        Ok(response) => response.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => panic!("{what} did not answer within {ANSWER_WITHIN:?} while the database was unreachable"),
    }
}

/// 503, `Retry-After`, and `temporarily_unavailable` in a JSON error.
async fn assert_unavailable(what: &str, response: reqwest::Response) {
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(retry_after.is_some(), "{what}: a 503 says when to try again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_unreachable_requests_answer_503_at_once_and_recover_after() {
    let (url, postgres, _db) = database("outage").await;
    let proxy = Proxy::start(postgres).await;
    let server = TestServer::start_with(Options { database_url: Some(proxy.url(&url)), ..Default::default() }).await;
    let s = setup(&server).await;
    let http = &server.http;
    let token = |pairs: &[(&str, &str)]| http.post(server.url("/token")).basic_auth(&s.id, Some(&s.secret)).form(pairs);
    let refresh = || token(&[("grant_type", "refresh_token"), ("refresh_token", &s.refresh)]);
    let introspect =
        || http.post(server.url("/introspect")).basic_auth(&s.id, Some(&s.secret)).form(&[("token", &s.access)]);
    let userinfo = || http.get(server.url("/userinfo")).bearer_auth(&s.access);
    let admin = || http.get(server.url("/admin/v1/clients")).bearer_auth(ADMIN_TOKEN);
    let authorize = || s.browser.http.get(authorize_url(&server, &s.id).as_str());

    proxy.cut();
    // The client is cached for a second; past that, asking for its tokens needs the database too.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    {
        assert_unavailable("refresh", bounded("refresh", refresh()).await).await;
        assert_unavailable(
            "client credentials",
            bounded("client credentials", token(&[("grant_type", "client_credentials")])).await,
        )
        .await;
        assert_unavailable("introspection", bounded("introspection", introspect()).await).await;
        assert_unavailable("userinfo", bounded("userinfo", userinfo()).await).await;
        assert_unavailable("admin API", bounded("admin API", admin()).await).await;

        // The authorization endpoint shows the error on a page while it cannot check the
        // client, and redirects it (RFC 6749 §4.1.2.1) once it has.
        let response = bounded("authorization", authorize()).await;
        let status = response.status();
        if status.is_redirection() {
            let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
            assert_eq!(query(&location, "error").as_deref(), Some("temporarily_unavailable"), "{location}");
        } else {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key("retry-after"));
            let page = response.text().await.unwrap();
            assert!(page.contains("temporarily_unavailable"), "the page names the error: {page}");
        }
    }

    // Back without a restart.
    proxy.restore().await;
    let since = Instant::now();
    while introspect().send().await.unwrap().status() != StatusCode::OK {
        assert!(since.elapsed() < Duration::from_secs(10), "the server never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v: Value = introspect().send().await.unwrap().json().await.unwrap();
    assert_eq!(v["active"], true, "{v}");
    let r = refresh().send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the refresh token refused during the outage still works");
    assert_eq!(userinfo().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(admin().send().await.unwrap().status(), StatusCode::OK);
    let back = authorize().send().await.unwrap();
    let location = url::Url::parse(back.headers()["location"].to_str().unwrap()).unwrap();
    assert!(query(&location, "code").is_some(), "the session survived the outage: {location}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_postgres_fails_requests_in_flight_with_503_never_500() {
    let (url, postgres, _db) = database("restart").await;
    let database_name = url.rsplit('/').next().unwrap().to_owned();
    let proxy = Proxy::start(postgres).await;
    let server =
        Arc::new(TestServer::start_with(Options { database_url: Some(proxy.url(&url)), ..Default::default() }).await);
    let s = Arc::new(setup(&server).await);

    // Requests that read (introspection) and write (a pushed authorization request) while
    // the database's connections are ended under them.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (server, s, stop) = (server.clone(), s.clone(), stop.clone());
        let (served, unavailable, failures) = (served.clone(), unavailable.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = if worker % 2 == 0 {
                    server.form("/introspect", &[("token", &s.access)], Some((&s.id, &s.secret))).await
                } else {
                    let pairs = [("response_type", "code"), ("redirect_uri", REDIRECT), ("scope", "openid")];
                    server.form("/par", &pairs, Some((&s.id, &s.secret))).await
                };
                if status.is_success() {
                    served.fetch_add(1, Ordering::Relaxed);
                } else if status == StatusCode::SERVICE_UNAVAILABLE && body["error"] == "temporarily_unavailable" {
                    unavailable.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.lock().unwrap().push(format!("{status} {body}"));
                }
            }
        }));
    }

    // PostgreSQL ends its backends as it shuts down (57P01); the proxy closes connections as
    // a crash or a network cut would.
    let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let mut terminated = 0;
    for round in 0..60 {
        if round % 3 == 2 {
            proxy.close_connections();
        } else {
            terminated += end_backends(&admin, &database_name).await.len();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    admin.close().await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let (served, unavailable) = (served.load(Ordering::Relaxed), unavailable.load(Ordering::Relaxed));
    eprintln!("restarts: {terminated} backends ended; {served} requests served, {unavailable} answered 503");
    assert!(terminated > 0, "backends were ended");
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "every request is served or answered 503 ({} were not, of {}): {:?}",
        failures.len(),
        served + unavailable + failures.len(),
        &failures[..failures.len().min(5)]
    );
    let (status, v) = server.form("/introspect", &[("token", &s.access)], Some((&s.id, &s.secret))).await;
    assert_eq!((status, &v["active"]), (StatusCode::OK, &json!(true)), "served again: {v}");
}

/// A database that stops answering without closing its connections (a network gone silent):
/// a request waits at most the storage plugin's deadline (5 s) for it, then answers 503,
/// those whose statements were in flight when it went silent included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_is_unavailable_after_the_storage_deadline() {
    let (url, postgres, _db) = database("silent").await;
    let proxy = Proxy::start(postgres).await;
    let server =
        Arc::new(TestServer::start_with(Options { database_url: Some(proxy.url(&url)), ..Default::default() }).await);
    let s = Arc::new(setup(&server).await);

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (server, s, stop, failures) = (server.clone(), s.clone(), stop.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = async {
                    if worker % 2 == 0 {
                        server.form("/introspect", &[("token", &s.access)], Some((&s.id, &s.secret))).await
                    } else {
                        let pairs = [("response_type", "code"), ("redirect_uri", REDIRECT), ("scope", "openid")];
                        server.form("/par", &pairs, Some((&s.id, &s.secret))).await
                    }
                };
                match tokio::time::timeout(Duration::from_secs(9), request).await {
                    Ok((status, _)) if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE => {}
                    Ok((status, body)) => failures.lock().unwrap().push(format!("{status} {body}")),
                    Err(_) => failures.lock().unwrap().push("no answer within 9 s".to_owned()),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.stall();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let response = tokio::time::timeout(
        Duration::from_secs(9),
        server
            .http
            .post(server.url("/introspect"))
            .basic_auth(&s.id, Some(&s.secret))
            .form(&[("token", &s.access)])
            .send(),
    )
    .await
    .expect("an answer while the database is silent")
    .unwrap();
    assert_unavailable("introspection", response).await;
    proxy.unstall();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(failures.is_empty(), "every request is served or answered 503 in time: {failures:?}");
    let (status, v) = server.form("/introspect", &[("token", &s.access)], Some((&s.id, &s.secret))).await;
    assert_eq!((status, &v["active"]), (StatusCode::OK, &json!(true)), "served again: {v}");
}

/// A connection that broke while it waited in the pool (its backend ended, as a restart of
/// PostgreSQL ends it, while the server had nothing to do) is checked when it is taken after
/// such a wait, and replaced: the requests after the pause are served, none answered 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_broke_while_idle_are_replaced_before_use() {
    let (url, _postgres, _db) = database("idle").await;
    let database_name = url.rsplit('/').next().unwrap().to_owned();
    let server =
        Arc::new(TestServer::start_with(Options { database_url: Some(url.clone()), ..Default::default() }).await);
    let s = Arc::new(setup(&server).await);
    let introspect_at_once = || {
        let requests = (0..8).map(|_| {
            let (server, s) = (server.clone(), s.clone());
            tokio::spawn(
                async move { server.form("/introspect", &[("token", &s.access)], Some((&s.id, &s.secret))).await },
            )
        });
        futures::future::join_all(requests)
    };
    // Several connections in the pool.
    for answer in introspect_at_once().await {
        assert_eq!(answer.unwrap().0, StatusCode::OK);
    }

    let admin = sqlx::PgPool::connect(&url).await.expect("PostgreSQL");
    let ended = end_backends(&admin, &database_name).await;
    admin.close().await;
    assert!(ended.iter().filter(|ended| **ended).count() > 1, "the pool's connections were ended: {ended:?}");

    // Longer than a connection may wait unchecked (`limits::POSTGRES_CHECK_IDLE_AFTER`).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for answer in introspect_at_once().await {
        let (status, v) = answer.unwrap();
        assert_eq!((status, &v["active"]), (StatusCode::OK, &json!(true)), "served after the pause: {v}");
    }
}
