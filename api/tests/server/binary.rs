//! The `backchannel` binary as an operator runs it: boolean environment
//! variables, what `serve` prints, and its logs (text without colour codes
//! when stderr is not a terminal; JSON lines on request).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use backchannel_testkit::demo::SUPPORT;

fn backchannel() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backchannel"));
    for (key, _) in std::env::vars() {
        if key.starts_with("BACKCHANNEL_") {
            command.env_remove(key);
        }
    }
    command
}

/// Starts `serve` on port 0 in `dir`; the child and what it printed on
/// stdout up to and including the line starting with `Health`.
fn serve(dir: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> (Child, Vec<String>) {
    let mut child = backchannel()
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drained to the end by a thread of its own, so the server never
    // writes into a closed pipe.
    let stdout = child.stdout.take().unwrap();
    let (lines, printed_lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut printed = Vec::new();
    for line in printed_lines {
        let done = line.starts_with("Health");
        printed.push(line);
        if done {
            break;
        }
    }
    (child, printed)
}

/// `ADDR` from the `GraphQL     http://ADDR/graphql ...` line.
fn addr(printed: &[String]) -> String {
    let line = printed
        .iter()
        .find(|l| l.starts_with("GraphQL"))
        .unwrap_or_else(|| panic!("no GraphQL line in {printed:?}"));
    let url = line.split_whitespace().nth(1).unwrap();
    url.trim_start_matches("http://")
        .trim_end_matches("/graphql")
        .to_owned()
}

/// Stops the child and returns what it wrote on stderr.
fn stop(mut child: Child) -> String {
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

fn post_unauthenticated(addr: &str) {
    let body = r#"{"query":"query Me { me { id } }"}"#;
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("UNAUTHENTICATED"), "{answer}");
}

#[test]
fn boolean_environment_variables_accept_1_yes_and_friends() {
    let dir = tempfile::tempdir().unwrap();
    // A short secret makes `serve` fail after parsing, before it opens anything.
    let output = backchannel()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("BACKCHANNEL_SECRET", "short")
        .env("BACKCHANNEL_DEMO", "1")
        .env("BACKCHANNEL_NO_GRAPHIQL", "yes")
        .env("BACKCHANNEL_NO_INTROSPECTION", "0")
        .env("BACKCHANNEL_NO_METRICS", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("invalid value"), "{stderr}");
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");

    let output = backchannel()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("BACKCHANNEL_DEMO", "perhaps")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'perhaps'"), "{stderr}");
}

#[test]
fn serve_prints_graphiql_and_the_demo_groups_and_logs_json_lines_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (child, printed) = serve(
        dir.path(),
        &[("BACKCHANNEL_LOG_FORMAT", "json")],
        &["--demo"],
    );
    let addr = addr(&printed);
    let text = printed.join("\n");
    assert!(
        text.contains(&format!("GraphiQL    http://{addr}/ ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Metrics     http://{addr}/metrics")),
        "{text}"
    );
    assert!(
        text.contains(SUPPORT),
        "the demo's groups are printed: {text}"
    );
    post_unauthenticated(&addr);
    let stderr = stop(child);
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "listening"),
        "{stderr}"
    );
    let graphql = lines
        .iter()
        .find(|l| l["message"] == "graphql")
        .unwrap_or_else(|| panic!("no graphql line: {stderr}"));
    assert_eq!(graphql["errors"], "UNAUTHENTICATED", "{graphql}");
    assert_eq!(graphql["operation"], "Me", "{graphql}");
    assert_eq!(graphql["level"], "INFO", "{graphql}");
}

#[test]
fn text_logs_carry_no_colour_codes_when_not_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (child, printed) = serve(dir.path(), &[], &[]);
    post_unauthenticated(&addr(&printed));
    let stderr = stop(child);
    assert!(stderr.contains("listening"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    // Codes are plain, not JSON-quoted.
    assert!(stderr.contains("errors=UNAUTHENTICATED"), "{stderr}");
}
