//! Headless Chromium for the dashboard's tests, driven over WebDriver by `fantoccini`.
//!
//! The browser is Debian's `chromium` with its `chromium-driver` (never one a tool downloads).
//! Each test starts its own chromedriver on a free port and drives the pages the way a person
//! would: by label texts, button texts and link texts. When Chromium is missing the tests
//! fail with the command that installs it: a skipped browser test would hide a broken page.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// How long a page gets to show something before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time: the machine has two cores, and a Chromium per test in parallel
/// would make every page slow for all of them.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A browser session and the chromedriver behind it; both end when it is dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own with the Chromium it started: end the
        // group, so a failed test leaves no browser behind.
        // `--` keeps the negative group id from being read as an option (procps' kill would
        // otherwise take `-<pgid>` for something else entirely).
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.driver.id()))
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port for chromedriver")
}

/// An XPath string literal for text without both quote kinds.
fn lit(text: &str) -> String {
    if text.contains('\'') {
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the dashboard's browser tests need Debian's {package} \
                 (apt-get install chromium chromium-driver)"
            );
        }
        let turn = ONE_BROWSER.lock().await;
        let port = free_port();
        let log = screenshot_dir().join("chromedriver.log");
        std::fs::create_dir_all(screenshot_dir()).expect("screenshot directory");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--no-default-browser-check",
                    // The tests talk to 127.0.0.1 only: keep Chromium's own services quiet.
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--disable-domain-reliability",
                    "--disable-client-side-phishing-detection", "--metrics-recording-only",
                    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let caps = match caps {
            Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        };
        // chromedriver takes a moment to listen; retry the session until it does.
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("no WebDriver session from {CHROMEDRIVER}: {err}"),
            }
        };
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        Browser {
            client,
            driver,
            _turn: turn,
        }
    }

    /// Ends the session (Chromium quits) and then chromedriver.
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Saves a PNG of the window as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The first element matching an XPath, once it is displayed.
    pub async fn wait_xpath(&self, xpath: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.client.find_all(Locator::XPath(xpath)).await {
                for el in found {
                    if el.is_displayed().await.unwrap_or(false) {
                        return el;
                    }
                }
            }
            if Instant::now() > deadline {
                let text = self.page_text().await;
                panic!("nothing shows {xpath} within {PATIENCE:?}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching a CSS selector whose text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(found) = self.client.find_all(Locator::Css(css)).await {
                for el in found {
                    if el.text().await.is_ok_and(|t| t.contains(needle)) {
                        return el;
                    }
                }
            }
            if Instant::now() > deadline {
                let text = self.page_text().await;
                panic!("no {css} says {needle:?} within {PATIENCE:?}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` holds for an attribute of the first element matching `css`;
    /// returns the attribute.
    pub async fn wait_attr(&self, css: &str, attr: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(Some(value)) = el.attr(attr).await {
                    if check(&value) {
                        return value;
                    }
                    last = Some(value);
                }
            }
            if Instant::now() > deadline {
                panic!("{css}[{attr}] never became right within {PATIENCE:?}; last {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the main area, for failure messages.
    pub async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The page's main heading once it reads `text`.
    pub async fn heading(&self, text: &str) -> Element {
        self.wait_xpath(&format!("//h1[normalize-space()={}]", lit(text)))
            .await
    }

    /// Clicks the button with this text.
    pub async fn click_button(&self, text: &str) {
        let button = self
            .wait_xpath(&format!(
                "//button[normalize-space()={} and not(@disabled)]",
                lit(text)
            ))
            .await;
        button.click().await.expect("click button");
    }

    /// Clicks the link with this text.
    pub async fn click_link(&self, text: &str) {
        let link = self
            .wait_xpath(&format!("//a[normalize-space()={}]", lit(text)))
            .await;
        link.click().await.expect("click link");
    }

    /// The form control whose label reads `label`.
    pub async fn control(&self, label: &str) -> Element {
        let label_el = self
            .wait_xpath(&format!("//label[normalize-space()={}]", lit(label)))
            .await;
        let id = label_el
            .attr("for")
            .await
            .expect("label for")
            .unwrap_or_else(|| panic!("the label {label:?} names no control"));
        self.client
            .find(Locator::Id(&id))
            .await
            .unwrap_or_else(|_| panic!("no control #{id} for the label {label:?}"))
    }

    /// Types into the field labelled `label`, replacing what it held.
    pub async fn fill(&self, label: &str, text: &str) {
        let input = self.control(label).await;
        input.clear().await.expect("clear");
        input.send_keys(text).await.expect("type");
    }

    /// Picks the option whose text is `option` in the select labelled `label`.
    pub async fn select(&self, label: &str, option: &str) {
        let select = self.control(label).await;
        select.select_by_label(option).await.expect("select option");
    }

    /// Ticks the checkbox or radio button whose label contains `text`, inside `scope` (an
    /// XPath prefix such as `//fieldset[@data-field='triggers']`, or empty for the page).
    pub async fn tick(&self, scope: &str, text: &str) {
        let input = self
            .wait_xpath(&format!(
                "{scope}//label[contains(normalize-space(), {})]//input",
                lit(text)
            ))
            .await;
        if !input.is_selected().await.unwrap_or(false) {
            input.click().await.expect("tick");
        }
    }

    /// The page is no wider than the window: nothing to scroll sideways but inside tables.
    pub async fn assert_fits_width(&self, what: &str) {
        let overflow = self
            .eval("return document.documentElement.scrollWidth - window.innerWidth")
            .await;
        assert!(
            overflow.as_i64().is_some_and(|px| px <= 0),
            "{what} is wider than the window by {overflow} px"
        );
    }

    /// Runs a script in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .expect("script")
    }
}
