//! A headless Chromium of a test's own, driven over WebDriver (fantoccini), with the
//! browser's security checks on. Needs Debian's `chromium` and `chromium-driver`
//! (`PORTCULLIS_CHROMIUM`, `PORTCULLIS_CHROMEDRIVER` override the paths).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Something a browser test needs is missing: the test says so and passes, unless
/// `PORTCULLIS_REQUIRE_BROWSER` is set, as CI sets it: there it fails.
pub fn missing(message: &str) {
    assert!(std::env::var_os("PORTCULLIS_REQUIRE_BROWSER").is_none(), "{message}");
    eprintln!("skipped: {message}");
}

fn tool(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

/// A headless Chromium of its own (fresh profile, its own chromedriver), preferring `lang`.
pub struct Chromium {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// None when the browser is not installed and the caller may skip.
    pub async fn start(lang: &str) -> Option<Self> {
        let (chromium, chromedriver) = (
            tool("PORTCULLIS_CHROMIUM", "/usr/bin/chromium"),
            tool("PORTCULLIS_CHROMEDRIVER", "/usr/bin/chromedriver"),
        );
        if !chromium.exists() || !chromedriver.exists() {
            let message = format!(
                "{} or {} is missing: apt-get install chromium chromium-driver",
                chromium.display(),
                chromedriver.display()
            );
            missing(&message);
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                // The machine's network is closed: no background traffic, no sandbox as root.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", format!("--lang={lang}"),
                         format!("--user-data-dir={}", profile.path().display())],
                "prefs": {"intl.accept_languages": lang},
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return Some(Self { client, driver, _profile: profile }),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no WebDriver session: {last:?}");
    }

    pub async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
    }

    pub async fn lang(&self) -> String {
        // A page being replaced has no document for a moment, or replaces the document just
        // found before it is read: read the next one's.
        for _ in 0..150 {
            match self.wait_for("html").await.attr("lang").await {
                Ok(lang) => return lang.unwrap_or_default(),
                Err(e) if e.is_stale_element_reference() => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("html lang: {e}"),
            }
        }
        panic!("the page never held still to be read");
    }

    pub async fn fill(&self, css: &str, value: &str) {
        self.client.find(Locator::Css(css)).await.unwrap().send_keys(value).await.unwrap();
    }

    /// The element once the page shows it: a click that submits a form returns before the
    /// next page has loaded.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
    }

    /// The current URL once it starts with `prefix`.
    pub async fn wait_for_url(&self, prefix: &str) -> url::Url {
        for _ in 0..150 {
            let url = self.client.current_url().await.unwrap();
            if url.as_str().starts_with(prefix) {
                return url::Url::parse(url.as_str()).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never reached {prefix}");
    }

    pub async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
