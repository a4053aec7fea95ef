//! What the binary's end-to-end tests share: a free port, a one-shot HTTP client, and a
//! child process killed when the test ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One HTTP/1.1 request (`Connection: close`); the status and the body as text.
fn request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(format!("{head}Connection: close\r\n\r\n{body}").as_bytes())
        .expect("writes");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("reads");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One HTTP/1.1 request with a bearer token; the status and the JSON body.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    let (status, text) = request(addr, &head, &body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET path` on 127.0.0.1:`port` without a token: the status and the body as text.
pub fn get_text(port: u16, path: &str) -> (u16, String) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n"), "")
}

/// The sum of a metric family's samples on the `/metrics` of the process listening on
/// `port`, over the lines that contain `label` (e.g. `"dependency"`; `""` for all); 0 when
/// the process does not answer (yet).
pub fn metric_sum(port: u16, family: &str, label: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let prefix = format!("{family}{{");
    text.lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Runs `sql` on database `db` of the machine's PostgreSQL (127.0.0.1:5432, trust auth).
pub fn psql(db: &str, sql: &str) {
    let ok = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", db, "-qc", sql])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "PostgreSQL on 127.0.0.1:5432 is needed: {sql}");
}

/// The pseudonym key the production-mode tests give every process.
pub const PRIVACY_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// `insights` in `dir` against a real broker and `store` (production mode: no embedded
/// broker; the environment's settings do not leak in).
pub fn insights(dir: &Path, brokers: &str, store: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_insights"));
    cmd.current_dir(dir)
        .env("INSIGHTS_BROKERS", brokers)
        .env("INSIGHTS_STORE_URL", store)
        .env("INSIGHTS_PRIVACY_KEY", PRIVACY_KEY)
        .env_remove("INSIGHTS_TOPOLOGY");
    cmd
}

/// A child process, killed on drop.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `insights run ARGS…` on the embedded default in `dir` (none of the environment's
/// settings leak in), killed when the returned guard drops; its stderr lines arrive on the
/// receiver.
pub fn spawn_run(dir: &Path, args: &[&std::ffi::OsStr]) -> (Running, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_insights"))
        .arg("run")
        .args(args)
        .current_dir(dir)
        .env_remove("INSIGHTS_BROKERS")
        .env_remove("INSIGHTS_STORE_URL")
        .env_remove("INSIGHTS_PRIVACY_KEY")
        .env_remove("INSIGHTS_JWT_SECRET")
        .env_remove("INSIGHTS_LLM_URL")
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs insights");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Running(child), rx)
}
