//! Health and stopping, as a load balancer and an operator see them: `/health/live` and
//! `/health/ready` (storage, plugins, keys, draining), a graceful stop on SIGTERM that answers
//! what is in flight and exits 0, the access log, the client address behind trusted
//! proxies, and start-up errors that say what is wrong in one line.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, Options, TestServer};

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
