//! The report in a real browser. Debian's headless Chromium opens report.html from disk, and
//! the tests check what only a browser can tell: no script fails, every section is in the
//! rendered DOM, names from the dataset stay text (no element is injected), and the page asks
//! the network for nothing. A screenshot is kept in target/browser-artifacts/ for people to look at.
//!
//! Three things are read from one Chromium run:
//! - the console, from stderr (`--enable-logging=stderr`). Chromium logs every console message of
//!   a web page at INFO level, whatever its level in the page, as
//!   `[pid:tid:time:INFO:CONSOLE:<line>] "<message>", source: <url> (<line>)`; an uncaught
//!   exception is such a line whose message starts with `Uncaught`. The report logs nothing, so
//!   any console line fails: a thrown error, a rejected promise, `console.error`, and a load
//!   blocked by the report's Content-Security-Policy (Chromium logs those as console messages too).
//! - the rendered DOM, from `--dump-dom` after the page's scripts ran.
//! - the network, from `--log-net-log`: every URL request a page started, and every host lookup
//!   made for a `file://` page (preconnect, DNS prefetch). Chromium's own background requests
//!   (time, update checks, sign-in) start without an initiating origin and are not counted.
//!
//! The checkers are tested on tiny pages that do fail (a `throw`, an `http://` image), so a
//! Chromium that changes its log format makes those tests fail instead of letting everything pass.
//!
//! Without /usr/bin/chromium the tests print a note and pass, so `cargo test` works on a machine
//! without a browser; with the `CI` environment variable set, a missing browser is a failure
//! (.ci/run installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::Fixture;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A hung browser fails the test after this long instead of hanging CI. A run takes seconds.
const CHROMIUM_DEADLINE: Duration = Duration::from_secs(90);

/// Every section of the report, by id (the top navigation links to them).
const SECTION_IDS: &[&str] = &[
    "overview",
    "classes",
    "pixels",
    "properties",
    "duplicates",
    "labels",
    "map",
    "files",
    "provenance",
];

/// Class and file names that become live markup if any part of the report forgets to escape them.
/// Each would mark `<body>` with `data-pwned` when its `onerror` runs (`src=x` always fails to
/// load). A folder name cannot hold `/`, so none of them can close a tag.
const ELEMENT_IN_TEXT: &str = "<img src=x onerror=document.body.dataset.pwned=1>";
const ELEMENT_AFTER_ATTRIBUTE: &str = "\"><img src=x onerror=document.body.dataset.pwned=2>";
/// Inside a `<script>` (JSON for the map, say) this makes the next `</script>` not end the
/// script: the rest of the report becomes script text that never runs, with no error logged.
/// Escaped for HTML or for a script (`\u003c`), it never appears raw in the DOM.
const SCRIPT_COMMENT_OPENER: &str = "<!--<script>";
const HOSTILE_NAMES: [&str; 3] = [
    ELEMENT_IN_TEXT,
    ELEMENT_AFTER_ATTRIBUTE,
    SCRIPT_COMMENT_OPENER,
];

#[test]
fn report_renders_in_chromium_without_errors_or_network() {
    if !chromium_present("report_renders_in_chromium_without_errors_or_network") {
        return;
    }
    let fx = Fixture::new();
    let mut seed = 0;
    let classes = ["cat", "dog"].into_iter().chain(HOSTILE_NAMES);
    for class in classes {
        for (split, count) in [("train", 3), ("test", 1)] {
            for i in 0..count {
                seed += 1;
                fx.png(&format!("{split}/{class}/{i}.png"), seed);
            }
        }
    }
    // Exact duplicates across splits, so the duplicates section shows thumbnails.
    let original = fx.png("train/dog/original.png", 1000);
    fx.bytes("test/dog/copy.png", &std::fs::read(original).unwrap());
    fx.png(&format!("train/cat/{ELEMENT_AFTER_ATTRIBUTE}.png"), 1001);
    fx.bytes("train/cat/broken.png", b"\x89PNG\r\n\x1a\n but not really");
    fx.bytes("train/dog/notes.txt", b"not an image");
    let run = fx.report(&[]);
    let report = run.out.join("report.html");

    let artifacts = artifact_dir();
    let screenshot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    std::fs::copy(&report, artifacts.join("report.html")).expect("copy report.html to artifacts");
    let page = open_headless(&report, Some(&screenshot));

    assert!(
        page.console.is_empty(),
        "the report wrote to the browser console (script errors, blocked loads):\n{}",
        page.console.join("\n")
    );
    assert!(
        page.network.is_empty(),
        "the report used the network:\n{}",
        page.network.join("\n")
    );
    for id in SECTION_IDS {
        assert!(
            page.dom.contains(&format!("id=\"{id}\"")),
            "section `{id}` is missing from the rendered report"
        );
    }
    for name in HOSTILE_NAMES {
        // The DOM dump escapes `&`, `<` and `>` in text; a name shown as text appears so.
        let as_text = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            page.dom.contains(&as_text),
            "class `{name}` is not shown as text in the rendered report"
        );
    }
    // A live injected element would be serialised with quoted attributes, and its handler would
    // have marked <body>; escaped text shows neither.
    for injected in [
        "<img src=\"x\"",
        "onerror=\"",
        "data-pwned",
        SCRIPT_COMMENT_OPENER,
    ] {
        assert!(
            !page.dom.contains(injected),
            "a name from the dataset became markup: the rendered DOM contains `{injected}`"
        );
    }

    let shot = image::open(&screenshot)
        .unwrap_or_else(|e| panic!("screenshot {}: {e}", screenshot.display()))
        .to_rgb8();
    assert_eq!(shot.dimensions(), (1280, 2000));
    let first = *shot.get_pixel(0, 0);
    assert!(
        shot.pixels().any(|p| *p != first),
        "the screenshot is a blank page"
    );
}

/// diff.html under the report's rules: no console line, no network, every category's section
/// and names from the dataset as text, in the old and the new version's thumbnails alike.
#[test]
fn diff_renders_in_chromium_without_errors_or_network() {
    if !chromium_present("diff_renders_in_chromium_without_errors_or_network") {
        return;
    }
    let fx = Fixture::new();
    let mut seed = 0;
    for class in ["cat", ELEMENT_IN_TEXT] {
        for i in 0..4 {
            seed += 1;
            fx.png(&format!("train/{class}/{i}.png"), seed);
        }
        fx.png(&format!("test/{class}/t.png"), 100 + seed);
    }
    let new = fx.dir.path().join("data-new");
    for entry in walkdir::WalkDir::new(fx.data()) {
        let entry = entry.unwrap();
        let target = new.join(entry.path().strip_prefix(fx.data()).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    // Relabelled into the hostile class, moved, removed, changed and added files.
    std::fs::rename(
        new.join("train/cat/0.png"),
        new.join(format!(
            "train/{ELEMENT_IN_TEXT}/{ELEMENT_AFTER_ATTRIBUTE}.png"
        )),
    )
    .unwrap();
    std::fs::rename(new.join("train/cat/1.png"), new.join("train/cat/moved.png")).unwrap();
    std::fs::remove_file(new.join("train/cat/2.png")).unwrap();
    crate::common::synthetic(500, 16, 12)
        .save(new.join("train/cat/3.png"))
        .unwrap();
    crate::common::synthetic(501, 16, 12)
        .save(new.join(format!("test/cat/{SCRIPT_COMMENT_OPENER}.png")))
        .unwrap();
    let out = fx.dir.path().join("diff-out");
    let args: Vec<String> = vec![
        "diff".into(),
        fx.data().display().to_string(),
        new.display().to_string(),
        "--out".into(),
        out.display().to_string(),
    ];
    let run = crate::common::run_in(fx.dir.path(), &args, &out);
    assert!(run.output.status.success(), "{}", run.stderr());
    let html = out.join("diff.html");
    let artifacts = artifact_dir();
    std::fs::copy(&html, artifacts.join("diff.html")).expect("copy diff.html to artifacts");
    let page = open_headless(&html, Some(&artifacts.join("diff.png")));
    assert!(page.console.is_empty(), "{}", page.console.join("\n"));
    assert!(page.network.is_empty(), "{}", page.network.join("\n"));
    for id in [
        "overview",
        "added",
        "removed",
        "changed",
        "relabelled",
        "moved",
        "classes",
        "statistics",
        "findings",
    ] {
        assert!(
            page.dom.contains(&format!("id=\"{id}\"")),
            "section `{id}` is missing"
        );
    }
    for name in HOSTILE_NAMES {
        let as_text = name
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(page.dom.contains(&as_text), "`{name}` is not shown as text");
    }
    for injected in [
        "<img src=\"x\"",
        "onerror=\"",
        "data-pwned",
        SCRIPT_COMMENT_OPENER,
    ] {
        assert!(
            !page.dom.contains(injected),
            "the DOM contains `{injected}`"
        );
    }
}

#[test]
fn browser_check_detects_a_deliberate_script_error() {
    if !chromium_present("browser_check_detects_a_deliberate_script_error") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("throws.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p id=\"before\">before</p>\
         <script>throw new Error(\"deliberate failure\");</script>\
         <script>Promise.reject(new Error(\"deliberate rejection\"));</script>\
         <script>console.error(\"deliberate console error\");</script>\
         </body></html>",
    )
    .unwrap();
    let loaded = open_headless(&page, None);
    for expected in [
        "Uncaught Error: deliberate failure",
        "Uncaught (in promise) Error: deliberate rejection",
        "deliberate console error",
    ] {
        assert!(
            loaded.console.iter().any(|line| line.contains(expected)),
            "the console check missed `{expected}`; it saw: {:#?}",
            loaded.console
        );
    }
    // The page did load: what failed was its script, not the browser.
    assert!(loaded.dom.contains("id=\"before\""), "{}", loaded.dom);
}

#[test]
fn browser_check_detects_a_network_request() {
    if !chromium_present("browser_check_detects_a_network_request") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("fetches.html");
    // Port 9 (discard) is on Chromium's list of unsafe ports: the image request is started, and
    // so logged, but refused before any connection is made. Nothing needs to listen. The
    // preconnect goes to another loopback address so that its host lookup is told apart from
    // the image's.
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"preconnect\" href=\"http://127.0.0.2:9\"></head>\
         <body><img src=\"http://127.0.0.1:9/x.png\"></body></html>",
    )
    .unwrap();
    let loaded = open_headless(&page, None);
    for expected in ["http://127.0.0.1:9/x.png", "host lookup http://127.0.0.2:9"] {
        assert!(
            loaded.network.iter().any(|line| line == expected),
            "the network check missed `{expected}`; it saw: {:#?}",
            loaded.network
        );
    }
}

#[test]
fn console_lines_are_read_in_old_and_new_chromium_log_formats() {
    let stderr = "\
/usr/bin/chromium: 9: [: 25276514304: unexpected operator
[16817:16817:1127/144732.292314:WARNING:ui/base/idle/idle_linux.cc:111] None of the known D-Bus ScreenSaver services could be used.
[16817:16817:1127/144732.780534:INFO:CONSOLE:3] \"Uncaught Error: boom\", source: file:///tmp/a.html (3)
[1:1:0101/000000.000000:INFO:CONSOLE(7)] \"Uncaught TypeError: x is null\", source: file:///tmp/a.html (7)
588777 bytes written to file /tmp/shot.png
";
    assert_eq!(
        console_messages(stderr),
        [
            "\"Uncaught Error: boom\", source: file:///tmp/a.html (3)",
            "\"Uncaught TypeError: x is null\", source: file:///tmp/a.html (7)",
        ]
    );
}

#[test]
fn chromiums_own_background_requests_are_not_counted_as_the_pages() {
    let netlog = serde_json::json!({
        "constants": {"logEventTypes": {
            "URL_REQUEST_START_JOB": 2,
            "HOST_RESOLVER_MANAGER_REQUEST": 5,
            "OTHER": 9
        }},
        "events": [
            {"type": 2, "phase": 1, "params": {"initiator": "not an origin",
                "url": "https://update.googleapis.com/service/update2/json"}},
            {"type": 2, "phase": 1, "params": {"initiator": "null", "url": "file:///tmp/a.png"}},
            {"type": 2, "phase": 1, "params": {"initiator": "null", "url": "wss://example.org/s"}},
            {"type": 2, "phase": 2, "params": {"net_error": -105}},
            {"type": 5, "phase": 1, "params": {"host": "https://google.com",
                "network_anonymization_key": "https://google.com same_site"}},
            {"type": 5, "phase": 1, "params": {"host": "https://example.org",
                "network_anonymization_key": "file:// [internally: file://] same_site"}},
            {"type": 9, "phase": 1, "params": {"url": "https://example.com/"}}
        ]
    });
    assert_eq!(
        page_network_use(&netlog),
        ["wss://example.org/s", "host lookup https://example.org"]
    );
}

/// Whether the browser tests can run here; panics when they must (`CI` is set).
fn chromium_present(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!("{CHROMIUM} is missing and CI is set: .ci/run should have installed chromium");
    }
    eprintln!(
        "note: skipping {test}: {CHROMIUM} is not installed (apt-get install chromium); \
         with CI set this is a failure"
    );
    false
}

/// target/browser-artifacts/, created if need be.
fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// What one headless load of a page showed.
struct PageLoad {
    /// The DOM after the page's scripts ran, serialised.
    dom: String,
    /// Console messages, as Chromium logged them: `"<message>", source: <url> (<line>)`.
    console: Vec<String>,
    /// Network use started by the page: URLs, and `host lookup <scheme://host>`.
    network: Vec<String>,
}

/// Opens `page` in headless Chromium with a fresh profile; optionally screenshots it.
fn open_headless(page: &Path, screenshot: Option<&Path>) -> PageLoad {
    let scratch = tempfile::tempdir().expect("temp dir");
    let netlog = scratch.path().join("netlog.json");
    let dom_file = scratch.path().join("dom.html");
    let stderr_file = scratch.path().join("stderr.txt");

    let mut command = Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox", // CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--enable-logging=stderr",
            "--v=0",
            // Virtual time: the page's scripts and timers run to completion before the dump.
            "--virtual-time-budget=2000",
            "--window-size=1280,2000",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg(format!("--log-net-log={}", netlog.display()));
    if let Some(screenshot) = screenshot {
        command.arg(format!("--screenshot={}", screenshot.display()));
    }
    command
        .arg("--dump-dom")
        .arg(file_url(page))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_file).expect("dom file"))
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"));
    let status = run_with_deadline(command, CHROMIUM_DEADLINE);

    let stderr = std::fs::read_to_string(&stderr_file).expect("chromium's stderr");
    assert!(status.success(), "chromium failed ({status}):\n{stderr}");
    let dom = std::fs::read_to_string(&dom_file).expect("dumped DOM");
    assert!(!dom.is_empty(), "chromium dumped no DOM:\n{stderr}");
    let netlog_text = std::fs::read_to_string(&netlog).expect("net log");
    let netlog: Value = serde_json::from_str(&netlog_text)
        .unwrap_or_else(|e| panic!("the net log is not JSON ({e}); did chromium crash?\n{stderr}"));
    PageLoad {
        dom,
        console: console_messages(&stderr),
        network: page_network_use(&netlog),
    }
}

/// Runs `command` in its own process group and waits at most `deadline`. The whole group
/// (browser, zygote, GPU and renderer processes) is killed afterwards, so a hung browser fails
/// the test and leaves nothing running.
fn run_with_deadline(mut command: Command, deadline: Duration) -> ExitStatus {
    use std::os::unix::process::CommandExt;

    command.process_group(0);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let group = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    let (done, finished) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    let outcome = finished.recv_timeout(deadline);
    // SAFETY: kill(2) with a negative pid signals the process group we created above and
    // touches no memory; an already empty group just gives ESRCH.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
    waiter.join().expect("waiter thread");
    match outcome {
        Ok(status) => status.expect("wait for chromium"),
        Err(_) => panic!("chromium did not finish within {deadline:?} and was killed"),
    }
}

/// `file://` URL of an absolute path, with anything unusual percent-encoded.
fn file_url(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut url = String::from("file://");
    for &byte in path.as_os_str().as_encoded_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            url.push(byte as char);
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// The console messages in Chromium's stderr log. Lines look like
/// `[pid:tid:time:INFO:CONSOLE:3] "msg", source: url (3)`; Chromium before ~2024 wrote
/// `INFO:CONSOLE(3)]`. Everything after the `] ` is kept.
fn console_messages(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once(":CONSOLE")?;
            let (position, message) = after.split_once("] ")?;
            let position = position
                .trim_start_matches([':', '('])
                .trim_end_matches(')');
            position
                .chars()
                .all(|c| c.is_ascii_digit())
                .then(|| message.to_string())
        })
        .collect()
}

/// Network use the page started, from a Chromium net log: URL requests to http(s)/ws(s) with an
/// initiating origin (a page's requests have one, `"null"` for a file:// page; the browser's own
/// have `"not an origin"`), and host lookups on behalf of a file:// page.
fn page_network_use(netlog: &Value) -> Vec<String> {
    let event_type = |name: &str| netlog["constants"]["logEventTypes"][name].as_u64();
    let request_start =
        event_type("URL_REQUEST_START_JOB").expect("URL_REQUEST_START_JOB in net log");
    let host_lookup = event_type("HOST_RESOLVER_MANAGER_REQUEST");
    let events = netlog["events"].as_array().expect("events in net log");
    let mut used = Vec::new();
    for event in events {
        let kind = event["type"].as_u64();
        let params = &event["params"];
        if kind == Some(request_start) {
            let Some(url) = params["url"].as_str() else {
                continue; // the end of a request, which carries only its result
            };
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            let network = ["http", "https", "ws", "wss"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme));
            if network && params["initiator"].as_str() != Some("not an origin") {
                used.push(url.to_string());
            }
        } else if kind.is_some() && kind == host_lookup {
            let for_file_page = params["network_anonymization_key"]
                .as_str()
                .is_some_and(|key| key.starts_with("file://"));
            if for_file_page {
                let host = params["host"].as_str().unwrap_or("?");
                used.push(format!("host lookup {host}"));
            }
        }
    }
    used.dedup();
    used
}

/// The map's script: hovering every point, clicking one, toggling every class and both
/// buttons must not throw, and every hovered point must show its tooltip. Class names are
/// hostile, so the tooltip and the map's JSON are checked for staying text too.
#[test]
fn map_hover_and_class_toggles_run_without_errors() {
    if !chromium_present("map_hover_and_class_toggles_run_without_errors") {
        return;
    }
    let fx = Fixture::new();
    let mut seed = 0;
    for class in ["cat", "dog", ELEMENT_IN_TEXT, SCRIPT_COMMENT_OPENER] {
        for i in 0..6 {
            seed += 1;
            fx.png(&format!("train/{class}/{i}.png"), seed);
        }
    }
    let run = fx.report(&[]);
    let html = run.html();
    // Appended after the report's own script, so it runs once the map is drawn.
    let driver = r#"<script>
(function () {
  var canvas = document.getElementById("map-canvas");
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var box = canvas.getBoundingClientRect();
  var shown = 0;
  function at(i) {
    return { clientX: box.left + 11 + data.x[i] / 10000 * (box.width - 22),
             clientY: box.top + 11 + (1 - data.y[i] / 10000) * (box.height - 22) };
  }
  for (var i = 0; i < data.x.length; i++) {
    canvas.dispatchEvent(new MouseEvent("mousemove", at(i)));
    if (!document.getElementById("map-tip").hidden) { shown++; }
  }
  canvas.dispatchEvent(new MouseEvent("click", at(0)));
  document.querySelectorAll("tr.mapclass").forEach(function (tr) { tr.click(); tr.click(); });
  document.querySelectorAll("button[data-map]").forEach(function (b) { b.click(); });
  document.body.dataset.mapPoints = String(data.x.length);
  document.body.dataset.tipsShown = String(shown);
})();
</script>"#;
    let at = html.rfind("</body>").expect("</body>");
    let page = run.out.join("driven.html");
    std::fs::write(&page, format!("{}{driver}{}", &html[..at], &html[at..])).unwrap();
    let loaded = open_headless(&page, None);
    assert!(
        loaded.console.is_empty(),
        "the map script wrote to the console:\n{}",
        loaded.console.join("\n")
    );
    assert!(
        loaded.dom.contains("data-map-points=\"24\""),
        "not every image is on the map"
    );
    assert!(
        loaded.dom.contains("data-tips-shown=\"24\""),
        "hovering a point did not always show its tooltip"
    );
    assert!(
        !loaded.dom.contains("data-pwned"),
        "a class name became markup"
    );
}
