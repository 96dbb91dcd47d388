//! `allowed_hosts`: every outgoing wasi:http request and every redirect hop is checked by the runner
//! before connecting;
//! denied ones are `host_denied` and listed in `execution.host_requests`. A local HTTP server on
//! 127.0.0.1 plays the outside world; `localhost` (the same server under a name the tasks do not
//! allow) is the forbidden host, so a request that slipped through would show up in its log.

use crate::support::{bundle, exec_json, fixture};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A tiny HTTP/1.1 server: `/hello`, `/redirect-local` (to `/hello`), `/redirect-away` (to
/// `localhost`), and an echo of POST bodies. Returns its port and the `Host` + path of every
/// request it served.
pub(crate) fn serve() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let (mut host, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("host:") {
                    host = value.trim().to_string();
                }
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
            log.lock().expect("log").push(format!("{host} {path}"));
            let response = match path.as_str() {
                "/redirect-local" => {
                    "HTTP/1.1 302 Found\r\nLocation: /hello\r\nContent-Length: 0\r\n\r\n"
                        .to_string()
                }
                "/redirect-away" => format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/hello\r\nContent-Length: 0\r\n\r\n"
                ),
                "/echo" => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    String::from_utf8_lossy(&body)
                ),
                _ => "HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\nhello from the host".to_string(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, seen)
}

fn requests(envelope: &Value) -> Vec<(String, bool, Value)> {
    envelope["execution"]["host_requests"]
        .as_array()
        .expect("host_requests")
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap_or_default().to_string(),
                r["allowed"] == true,
                r["status"].clone(),
            )
        })
        .collect()
}

#[test]
fn allowed_hosts_are_enforced_on_every_request_and_redirect() {
    let (port, seen) = serve();
    let base = format!("http://127.0.0.1:{port}");
    for source in ["http.py", "http.js"] {
        let task = bundle(&fixture(source));
        let call = |name: &str, url: String| exec_json(&task, &["--task", name, "--", &url]);

        let (code, envelope) = call("main", format!("{base}/hello"));
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(envelope["result"]["body"], "hello from the host");
        assert_eq!(
            requests(&envelope),
            [("127.0.0.1".into(), true, json!(200))]
        );

        let (code, envelope) = call("main", format!("{base}/redirect-local"));
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(envelope["result"]["redirected"], true);
        assert_eq!(
            requests(&envelope),
            [
                ("127.0.0.1".into(), true, json!(302)),
                ("127.0.0.1".into(), true, json!(200))
            ]
        );

        // Denied at the first hop, at a redirect hop, and with no hosts declared at all.
        for (name, url, at) in [
            (
                "main",
                format!("http://localhost:{port}/hello"),
                "request to `localhost`",
            ),
            (
                "main",
                format!("{base}/redirect-away"),
                "redirect to `localhost`",
            ),
            ("nohosts", format!("{base}/hello"), "request to `127.0.0.1`"),
        ] {
            let (code, envelope) = call(name, url.clone());
            assert_eq!(code, Some(1), "{source} {url}: {envelope}");
            assert_eq!(
                envelope["error"]["error_type"], "host_denied",
                "{source}: {envelope}"
            );
            let message = envelope["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains(at), "{source}: {message}");
            let last = requests(&envelope).pop().expect("a request was recorded");
            assert!(!last.1, "{source}: the denied request is listed as denied");
        }

        // Caught by the task: it succeeds, and the denied hop is still reported.
        let (code, envelope) = call("caught", format!("{base}/redirect-away"));
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert!(
            envelope["result"]
                .as_str()
                .unwrap_or_default()
                .starts_with("denied: ")
        );
        assert_eq!(
            requests(&envelope),
            [
                ("127.0.0.1".into(), true, json!(302)),
                ("localhost".into(), false, Value::Null)
            ]
        );

        // A sub-task declaring `*` under a caller holding only `localhost` gets `localhost`.
        let (code, envelope) = call("narrow_parent", format!("{base}/hello"));
        assert_eq!(code, Some(1), "{source}: {envelope}");
        let message = envelope["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("request to `127.0.0.1` denied"),
            "{source}: {message}"
        );
        assert_eq!(
            requests(&envelope),
            [("127.0.0.1".into(), false, Value::Null)]
        );
        assert_eq!(
            envelope["execution"]["subtasks"][0]["policy"]["allowed_hosts"],
            json!(["localhost"])
        );

        let (code, envelope) = call("post", format!("{base}/echo"));
        assert_eq!(code, Some(0), "{source}: {envelope}");
        assert_eq!(
            envelope["result"]["body"],
            r#"{"n": 1}"#.replace(": ", if source.ends_with(".js") { ":" } else { ": " })
        );
    }
    // Python's urllib goes through the same check.
    let task = bundle(&fixture("http.py"));
    let (code, envelope) = exec_json(
        &task,
        &[
            "--task",
            "via_urllib",
            "--",
            &format!("{base}/redirect-local"),
        ],
    );
    assert_eq!(code, Some(0), "{envelope}");
    assert_eq!(envelope["result"]["body"], "hello from the host");
    assert_eq!(requests(&envelope).len(), 2, "{envelope}");
    let (code, envelope) = exec_json(
        &task,
        &[
            "--task",
            "via_urllib",
            "--",
            &format!("{base}/redirect-away"),
        ],
    );
    assert_eq!(code, Some(1), "{envelope}");
    assert_eq!(envelope["error"]["error_type"], "host_denied", "{envelope}");

    let seen = seen.lock().expect("log");
    assert!(
        seen.iter().all(|line| !line.starts_with("localhost")),
        "a denied host was contacted: {seen:?}"
    );
}

#[test]
fn a_bundle_whose_tasks_reach_no_host_refuses_requests_without_connecting() {
    let (port, seen) = serve();
    for source in ["offline.py", "offline.js"] {
        let task = bundle(&fixture(source));
        let url = format!("http://127.0.0.1:{port}/hello");
        let (code, envelope) = exec_json(&task, &["--", &url]);
        assert_eq!(code, Some(1), "{source}: {envelope}");
        assert_eq!(
            envelope["error"]["error_type"], "host_denied",
            "{source}: {envelope}"
        );
        let message = envelope["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("request to `127.0.0.1`"),
            "{source}: {message}"
        );
        assert_eq!(
            requests(&envelope),
            [("127.0.0.1".into(), false, Value::Null)]
        );
    }
    assert!(
        seen.lock().expect("log").is_empty(),
        "nothing reached the server"
    );
}
