//! The `rouse` executable as an operator runs it: start-up errors, signals, exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::free_port;

fn rouse() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rouse"));
    // Never inherit an operator's settings into a test.
    for (key, _) in std::env::vars() {
        if key.starts_with("ROUSE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn a_malformed_setting_is_one_line_and_a_nonzero_exit() {
    let out = rouse()
        .args(["serve"])
        .env("ROUSE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("ROUSE_LISTEN"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_one_line_and_a_nonzero_exit() {
    let out = rouse()
        .args(["--config", "/nonexistent/rouse.yaml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/rouse.yaml"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = rouse()
        .args(["migrate"])
        .env(
            "ROUSE_DATABASE_URL",
            "postgres://rouse:hunter2@127.0.0.1:1/rouse",
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open the database"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_stops_the_server_with_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = rouse()
        .args(["serve"])
        .env("ROUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("ROUSE_DATABASE_URL", "sqlite://rouse.db")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_line(&mut child, "rouse is listening");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rouse did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("rouse.db").exists());
}

/// Reads the child's stderr until a line contains `needle`; keeps draining after.
pub fn wait_for_line(child: &mut std::process::Child, needle: &str) {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains(needle) => {
                // Keep the pipe drained so the child never blocks on a full buffer.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return;
            }
            Ok(line) => seen.push(line),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("rouse exited ({status}) before {needle:?}: {seen:#?}");
                }
            }
        }
    }
    panic!("no {needle:?} from rouse within 60 s: {seen:#?}");
}

/// SIGTERM while requests are in flight: exit 0, and every event that got a
/// 202 is in the database afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_in_flight_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let rotations = crate::support::test_rotations();
    let port = free_port();
    let mut child = rouse()
        .args(["serve"])
        .env("ROUSE_LISTEN", format!("127.0.0.1:{port}"))
        .env("ROUSE_DATABASE_URL", "sqlite://rouse.db")
        .env("ROUSE_ROTATIONS_DIR", rotations.path())
        // Every event must open its own alert here, not fold into a storm alert.
        .env("ROUSE_INTAKE_STORM_THRESHOLD", "100000")
        .env("ROUSE_INTAKE_BURST_PER_KEY", "100000")
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child_stderr = child.stderr.take();
    // Wait for readiness over HTTP (stderr is drained below).
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let drain = std::thread::spawn(move || {
        if let Some(stderr) = child_stderr.take() {
            for _ in BufReader::new(stderr).lines().map_while(Result::ok) {}
        }
    });
    crate::support::eventually("rouse answers /readyz", || {
        let http = http.clone();
        let url = format!("{base}/readyz");
        async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
    })
    .await;

    let (tx, mut first_answers) = tokio::sync::mpsc::channel::<()>(1000);
    let mut tasks = Vec::new();
    for i in 0..400 {
        let http = http.clone();
        let url = format!("{base}/v1/events");
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("inflight-{i}");
            let body = serde_json::json!({"action": "trigger", "dedup_key": key,
                                          "summary": "in flight", "severity": "critical"});
            let result = http
                .post(url)
                .header("x-rouse-key", crate::support::PAYMENTS_KEY)
                .json(&body)
                .send()
                .await;
            let _ = tx.send(()).await;
            match result {
                Ok(r) if r.status() == 202 => Some(key),
                _ => None,
            }
        }));
    }
    // Signal once some answers are back and many are still in flight.
    for _ in 0..50 {
        first_answers.recv().await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut acknowledged = Vec::new();
    for task in tasks {
        if let Some(key) = task.await.unwrap() {
            acknowledged.push(key);
        }
    }
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0), "rouse must exit 0 after SIGTERM");
    let _ = drain.join();
    assert!(
        acknowledged.len() >= 50,
        "only {} were acknowledged",
        acknowledged.len()
    );

    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("rouse.db").display()
    ))
    .await
    .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT dedup_key FROM alerts")
        .fetch_all(&db)
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|k| !stored.contains(*k))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged with 202 but not stored: {lost:?}"
    );
    db.close().await;
}

/// Logs written to a pipe or a file (a collector, `2> rouse.log`) carry no
/// ANSI colour codes; colour is for a terminal only.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = rouse()
        .args(["migrate"])
        .env("ROUSE_DATABASE_URL", "sqlite://rouse.db")
        .env_remove("NO_COLOR")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migrations applied"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escape in piped logs: {stderr:?}"
    );
}

#[test]
fn hash_password_prints_a_hash_that_a_person_can_log_in_with() {
    use std::io::Write;
    let mut child = rouse()
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rouse runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    // The catalog accepts it as a person's login.
    let yaml = format!(
        "people:\n  - id: alice\n    name: Alice\n    timezone: UTC\n    login: {{ password_hash: \"{phc}\" }}\n"
    );
    let files = vec![(std::path::PathBuf::from("people.yaml"), yaml)];
    let catalog = rouse::catalog::load_files(&files, &|_| None).expect("loads");
    assert_eq!(
        catalog.password_hash("alice").map(|h| h.expose()),
        Some(phc)
    );
    // A plain password where the hash belongs is a load error with its place.
    let bad = vec![(
        std::path::PathBuf::from("people.yaml"),
        "people:\n  - id: alice\n    name: Alice\n    timezone: UTC\n    login: { password_hash: hunter2 }\n".to_owned(),
    )];
    let err = rouse::catalog::load_files(&bad, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("people.yaml:5:") && err.contains("password_hash"),
        "{err}"
    );

    let empty = rouse()
        .arg("hash-password")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!empty.status.success());
}
