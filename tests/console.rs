//! The console in a real browser: headless Chromium driven through chromedriver (WebDriver)
//! against a real gslbd whose members are real TCP listeners. The page is used as an operator
//! would: it is loaded once, then watched and clicked; nothing reloads it.
//!
//! Needs the Debian packages `chromium` and `chromium-driver`. Without them the test says so
//! and passes, unless GSLBD_BROWSER_REQUIRED=1 (set by .ci/run, which installs them).
//! Screenshots of each state are written to `target/console/`.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backend::{Backend, Mode};
use common::{Ask, Server, addresses, ecs_of, eventually};
use fantoccini::{Client, ClientBuilder, Locator};

const TOKEN: &str = "c0nsole-t0ken";

/// One browser at a time: two Chromiums on two cores would stretch the page's timings.
static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// chromedriver on a free loopback port, in a process group of its own with the browsers it
/// starts: dropping it kills the whole group, so a test that fails before it closes its
/// session leaves no Chromium behind.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = self.child.id() as i32;
        // SAFETY: kill(2) on the group this test created (its leader is the child's PID).
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// chromedriver and the browser, or `None` (skip) when they are not installed.
fn driver() -> Option<(Driver, PathBuf)> {
    let found = on_path("chromedriver").zip(on_path("chromium"));
    let Some((chromedriver, chromium)) = found else {
        assert!(
            std::env::var_os("GSLBD_BROWSER_REQUIRED").is_none(),
            "GSLBD_BROWSER_REQUIRED is set but chromium or chromedriver is missing \
             (Debian: chromium chromium-driver)"
        );
        eprintln!("SKIPPED: the browser tests need chromium and chromedriver");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(chromedriver)
        .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    eventually(Duration::from_secs(20), "chromedriver listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    Some((d, chromium))
}

async fn browser(d: &Driver, chromium: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            // As root in CI: no sandbox; no GPU; /dev/shm may be small in a container.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a browser session")
}

/// Two sites; 127.0.61.1 and .2 in east (10.1/16), .3 in west (10.2/16); a tcp check that
/// notices a closed listener within a probe interval (200 ms).
fn config(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/c.yaml"),
        format!(
            "zone: c.test.
soa: {{ mname: ns1.c.test., rname: hostmaster.c.test. }}
ns: [ns1.c.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
sites:
  east: [10.1.0.0/16]
  west: [10.2.0.0/16]
checks:
  web: {{ tcp: {{ port: {port} }}, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }}
pools:
  web:
    policy: topology
    checks: [web]
    max_answers: 3
    members:
      - {{ address: 127.0.61.1, site: east }}
      - {{ address: 127.0.61.2, site: east }}
      - {{ address: 127.0.61.3, site: west }}
names:
  www: {{ pool: web }}
"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.join("gslbd.yaml"), "api: { token_file: token }\n").unwrap();
}

fn shots() -> PathBuf {
    let d = common::root().join("target/console");
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).unwrap();
}

fn row(member: &str) -> String {
    format!("tr.member[data-member=\"{member}\"]")
}

async fn text(c: &Client, css: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Poll the page until `css`'s text satisfies `ok` (every 100 ms, up to `within`).
async fn wait_text(c: &Client, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let t = text(c, css).await;
        if let Some(t) = &t
            && ok(t)
        {
            return t.clone();
        }
        assert!(
            start.elapsed() < within,
            "{css}: still {t:?} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.find(Locator::Css(css)).await.expect(css);
    e.clear().await.expect("clear");
    e.send_keys(value).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

/// What dig would get: the addresses of `www.c.test` for a plain query or an ECS subnet.
fn dig(s: &Server, subnet: Option<(&str, u8)>) -> BTreeSet<String> {
    let mut q = Ask::new("www.c.test.", "A");
    if let Some((a, p)) = subnet {
        q = q.ecs(a, p);
    }
    addresses(&s.udp(&q)).into_iter().collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_operator_watches_drains_and_asks_from_the_page() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let mut backends = Backend::group(61, 3, Mode::Ok);
    let d = tempfile::tempdir().unwrap();
    config(d.path(), backends[0].addr.port());
    let s = Server::start(d.path(), &[]);
    s.wait_log("ready: the first probe round has finished", 10);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver, &chromium).await;
        c.goto(&s.api()).await.expect("open the console");

        // 1. Every member listed, up.
        for m in ["127.0.61.1", "127.0.61.2", "127.0.61.3"] {
            let css = format!("{} td.state", row(m));
            wait_text(&c, &css, Duration::from_secs(10), |t| t == "up").await;
        }
        assert_eq!(
            text(&c, "section.pool[data-pool=\"web\"] .pool-state")
                .await
                .as_deref(),
            Some("healthy")
        );
        // Answers show up as a rate (sampled each second from the answer counters) and on a
        // chart that is not flat (they rose from nothing), while clients keep asking.
        let rate = format!("{} td.rate", row("127.0.61.3"));
        let line = format!("{} svg polyline", row("127.0.61.3"));
        let start = Instant::now();
        loop {
            for _ in 0..20 {
                dig(&s, None);
            }
            let shown = text(&c, &rate).await.unwrap_or_default();
            let points = match c.find(Locator::Css(&line)).await {
                Ok(e) => e.attr("points").await.unwrap().unwrap_or_default(),
                Err(_) => String::new(),
            };
            let heights: BTreeSet<&str> = points
                .split_whitespace()
                .filter_map(|p| p.split(',').nth(1))
                .collect();
            if shown.parse::<f64>().is_ok_and(|r| r > 0.0) && heights.len() > 1 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "rate {shown:?}, chart {points:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        shot(&c, "1-overview").await;

        // 2. A backend dies: its row turns down, with the probe's reason, without a reload.
        c.execute("window.gslbdTestMarker = 42; return 1;", vec![])
            .await
            .unwrap();
        backends[0].stop();
        let killed = Instant::now();
        let state = format!("{} td.state", row("127.0.61.1"));
        wait_text(&c, &state, Duration::from_secs(2), |t| t == "down").await;
        let took = killed.elapsed();
        let reason = text(&c, &format!("{} td.reason", row("127.0.61.1")))
            .await
            .unwrap();
        assert!(reason.contains("refused"), "reason shown: {reason:?}");
        let marker = c
            .execute("return window.gslbdTestMarker;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, serde_json::json!(42), "the page was reloaded");
        assert_eq!(
            text(&c, "section.pool[data-pool=\"web\"] .pool-state")
                .await
                .as_deref(),
            Some("degraded")
        );
        eprintln!(
            "member down on the page {} ms after its listener closed",
            took.as_millis()
        );
        shot(&c, "2-member-down").await;

        // 3. Drain without the token: refused, visibly; nothing changes.
        assert!(dig(&s, None).contains("127.0.61.2"));
        click(
            &c,
            &format!("{} button[data-action=\"drain\"]", row("127.0.61.2")),
        )
        .await;
        fill(&c, "#action-reason", "maintenance").await;
        fill(&c, "#action-by", "alice").await;
        click(&c, "#action-confirm").await;
        let refused = wait_text(&c, "#action-result", Duration::from_secs(5), |t| {
            t.contains("refused")
        })
        .await;
        assert!(refused.contains("Bearer"), "{refused}");
        let result = c.find(Locator::Css("#action-result")).await.unwrap();
        assert!(result.is_displayed().await.unwrap());
        assert_eq!(
            result.attr("class").await.unwrap().as_deref(),
            Some("error")
        );
        assert!(dig(&s, None).contains("127.0.61.2"), "refused, yet applied");
        shot(&c, "3-refused-without-token").await;

        // 4. With the token (entered once for the session): drained at once; dig no longer
        // gets it; the history says who and why.
        fill(&c, "#token", TOKEN).await;
        click(&c, "#token-use").await;
        wait_text(&c, "#token-state", Duration::from_secs(2), |t| {
            t == "token set"
        })
        .await;
        click(
            &c,
            &format!("{} button[data-action=\"drain\"]", row("127.0.61.2")),
        )
        .await;
        fill(&c, "#action-reason", "maintenance").await;
        fill(&c, "#action-by", "alice").await;
        click(&c, "#action-confirm").await;
        wait_text(&c, "#action-result", Duration::from_secs(5), |t| {
            t.contains("done")
        })
        .await;
        assert_eq!(dig(&s, None), set(&["127.0.61.3"]));
        wait_text(
            &c,
            &format!("{} td.state", row("127.0.61.2")),
            Duration::from_secs(3),
            |t| t == "drained",
        )
        .await;
        let event = "#history tbody tr.event[data-member=\"127.0.61.2\"]";
        let change = wait_text(
            &c,
            &format!("{event} td.change"),
            Duration::from_secs(5),
            |t| t.contains("drain"),
        )
        .await;
        assert!(change.contains("none"), "{change}");
        assert_eq!(
            text(&c, &format!("{event} td.by")).await.as_deref(),
            Some("alice")
        );
        assert_eq!(
            text(&c, &format!("{event} td.reason")).await.as_deref(),
            Some("maintenance")
        );
        // The token is kept for the browser session only: not in a cookie, not in the URL.
        let cookies = c.execute("return document.cookie;", vec![]).await.unwrap();
        assert_eq!(cookies, serde_json::json!(""));
        assert!(!c.current_url().await.unwrap().as_str().contains(TOKEN));
        shot(&c, "4-drained").await;

        // 5. What would an ECS client in west get: the page's answer is dig's.
        let want = dig(&s, Some(("10.2.3.0", 24)));
        assert_eq!(want, set(&["127.0.61.3"]));
        let scope = ecs_of(&s.udp(&Ask::new("www.c.test.", "A").ecs("10.2.3.0", 24)))
            .expect("an ECS option")
            .2;
        fill(&c, "#explain-name", "www.c.test").await;
        fill(&c, "#explain-client", "10.2.3.0/24").await;
        click(&c, "#explain-submit").await;
        wait_text(&c, "#explain-answer li", Duration::from_secs(5), |_| true).await;
        let mut got = BTreeSet::new();
        for li in c
            .find_all(Locator::Css("#explain-answer li"))
            .await
            .unwrap()
        {
            let record = li.text().await.unwrap();
            got.insert(record.split_whitespace().last().unwrap_or("").to_string());
        }
        assert_eq!(got, want, "explain on the page vs dig");
        assert_eq!(
            text(&c, "#explain-scope").await.as_deref(),
            Some(format!("/{scope}").as_str())
        );
        let steps = c.find_all(Locator::Css("#explain-steps li")).await.unwrap();
        assert!(steps.len() >= 3, "{} steps shown", steps.len());
        shot(&c, "5-explain").await;

        c.close().await.expect("close the browser");
    });
}

/// Node `n` of a two-node cluster on the etcd at `etcd`, probing from 127.0.62.1n.
fn cluster_node(root: &Path, n: usize, etcd: &str, port: u16) -> PathBuf {
    let dir = root.join(format!("ns{n}"));
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(
        dir.join("zones/k.yaml"),
        format!(
            "zone: k.test.
soa: {{ mname: ns1.k.test., rname: h.k.test. }}
ns: [ns1.k.test.]
records:
  ns1: {{ A: [192.0.2.53] }}
checks:
  web: {{ http: {{ port: {port}, path: / }}, interval: 300ms, timeout: 200ms, rise: 1, fall: 1 }}
pools:
  web:
    checks: [web]
    members: [{{ address: 127.0.62.1 }}, {{ address: 127.0.62.2 }}]
names:
  www: {{ pool: web }}
"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("gslbd.yaml"),
        format!(
            "state_dir: state
cluster:
  node: ns{n}
  etcd: [\"http://{etcd}:2379\"]
  prefix: /console/
  probe_source: 127.0.62.1{n}
  quorum: majority
"
        ),
    )
    .unwrap();
    dir
}

/// With a cluster: each node's vote per member on the page, the live nodes, and a node cut off
/// from etcd says so.
#[test]
fn the_cluster_view_shows_each_nodes_vote_and_a_lost_etcd() {
    if !common::etcd::available() {
        return;
    }
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some((driver, chromium)) = driver() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut etcd = common::etcd::Etcd::start("127.0.62.9", d.path());
    let backends = Backend::group(62, 2, Mode::Ok);
    // ns1 sees 127.0.62.1 fail (503 to its probes); ns2 sees it answer.
    backends[0].refuse_from(&["127.0.62.11"]);
    let port = backends[0].addr.port();
    let nodes: Vec<Server> = (1..=2)
        .map(|n| Server::start(&cluster_node(d.path(), n, "127.0.62.9", port), &[]))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = browser(&driver, &chromium).await;
        c.goto(&nodes[0].api()).await.expect("open the console");
        let summary = wait_text(&c, "#cluster", Duration::from_secs(20), |t| {
            t.contains("etcd connected") && t.contains("ns1") && t.contains("ns2")
        })
        .await;
        assert!(summary.contains("node ns1"), "{summary}");
        // Each node's vote on the failing member: ns1 down, ns2 up.
        let votes = format!("{} td.checks", row("127.0.62.1"));
        wait_text(&c, &votes, Duration::from_secs(20), |t| {
            t.contains("ns1✗") && t.contains("ns2✓")
        })
        .await;
        let other = format!("{} td.checks", row("127.0.62.2"));
        wait_text(&c, &other, Duration::from_secs(10), |t| {
            t.contains("ns1✓") && t.contains("ns2✓")
        })
        .await;
        // The history says whose view a transition was (and the quorum's changes, the votes).
        let event = "#history tbody tr.event[data-member=\"127.0.62.1\"] td.reason";
        let start = Instant::now();
        let reasons = loop {
            let mut reasons = Vec::new();
            for td in c.find_all(Locator::Css(event)).await.unwrap() {
                reasons.push(td.text().await.unwrap_or_default());
            }
            if reasons.iter().any(|r| r.contains("503")) {
                break reasons;
            }
            assert!(start.elapsed() < Duration::from_secs(5), "{reasons:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for r in reasons.iter().filter(|r| r.contains("503")) {
            assert!(r.starts_with("ns1 saw: "), "{r}");
        }
        shot(&c, "6-cluster").await;

        // etcd gone: this node says it is cut off, and keeps serving the page.
        etcd.kill();
        let cut = wait_text(&c, "#cluster", Duration::from_secs(15), |t| {
            t.contains("CUT OFF")
        })
        .await;
        assert!(cut.contains("etcd"), "{cut}");
        shot(&c, "7-cluster-cut-off").await;
        c.close().await.expect("close the browser");
    });
    drop(nodes);
}
