//! Test kit shared by the workspace's integration tests: a real Tansu broker process on a
//! free loopback port (stopped on drop), small Kafka helpers, a real LLM server
//! (llama.cpp with SmolLM2) and a server that never answers.

pub mod events;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// How long a command a test runs may take before the test fails (a generous bound: the
/// longest, a pipeline run over thousands of interactions, takes about a minute).
pub const COMMAND_LIMIT: Duration = Duration::from_secs(600);

/// `Command::output`, bounded: a child still running after `limit` is killed and the test
/// fails naming the command, so that a hang fails the run instead of stalling it.
pub trait OutputWithin {
    /// Runs the command to completion within `limit`, capturing stdout and stderr.
    fn output_within(&mut self, limit: Duration) -> std::io::Result<std::process::Output>;
}

impl OutputWithin for Command {
    fn output_within(&mut self, limit: Duration) -> std::io::Result<std::process::Output> {
        use std::io::Read;
        let what = format!("{self:?}");
        let mut child = self.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        // Read both pipes on threads (a full pipe would stall the child), handing the bytes
        // back over channels so that a grandchild holding a pipe open cannot stall us.
        let reader = |pipe: Option<Box<dyn Read + Send>>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut p) = pipe {
                    let _ = p.read_to_end(&mut bytes);
                }
                let _ = tx.send(bytes);
            });
            rx
        };
        let stdout = reader(
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let stderr = reader(
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        );
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                panic!(
                    "{what} did not finish within {limit:?}; its stderr:\n{}",
                    String::from_utf8_lossy(&err)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let collect = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
            rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default()
        };
        Ok(std::process::Output {
            status,
            stdout: collect(stdout),
            stderr: collect(stderr),
        })
    }
}

/// The Tansu binary: `INSIGHTS_TANSU`, or `.tools/bin/tansu` as `scripts/setup.sh` installs it.
pub fn tansu_binary() -> PathBuf {
    if let Ok(p) = std::env::var("INSIGHTS_TANSU") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = root.join(".tools/bin/tansu");
    assert!(
        bin.exists(),
        "Tansu not found at {}: run scripts/setup.sh",
        bin.display()
    );
    bin
}

/// A running Tansu broker with in-memory storage.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Tansu {
    /// Starts a broker with in-memory storage on a free port and waits until it listens.
    pub fn start() -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts tansu");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Tansu did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Tansu { child, addr }
    }

    /// Its `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        self.addr.to_string()
    }

    /// Creates a topic with `tansu topic create`.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new(tansu_binary())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &format!("tcp://{}", self.addr),
            ])
            .output_within(COMMAND_LIMIT)
            .expect("runs tansu topic create");
        assert!(
            out.status.success(),
            "topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 50 ms until it holds, at most `timeout`; then fails the test
/// naming `what` it waited for. Every wait in a test goes through a bound like this one: a
/// hang in CI is a failed run.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain producer.
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer")
}

/// Produces one message and waits for delivery.
pub async fn produce(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) {
    p.send(
        FutureRecord::to(topic).key(key).payload(payload),
        Duration::from_secs(10),
    )
    .await
    .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
}

/// Reads `topic` from the beginning in a fresh group until `n` messages arrived (or the
/// timeout passed), and returns them.
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    n: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribes");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => out.push(m.detach()),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    out
}

/// A header's value as text.
pub fn header(m: &OwnedMessage, key: &str) -> Option<String> {
    use rdkafka::message::Headers;
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value.map(|v| String::from_utf8_lossy(v).into_owned()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A real OpenAI-compatible LLM server: llama.cpp's server with SmolLM2-135M, as
/// `scripts/setup.sh` installs it in `.tools/llm-venv` (`scripts/llm_server.py`).
#[derive(Debug)]
pub struct LlmServer {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl LlmServer {
    /// Starts a server on a free port and waits until it answers `/health`.
    pub fn start() -> LlmServer {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".tools/llm-venv/bin/python");
        assert!(
            python.exists(),
            "the LLM server is not installed at {}: run scripts/setup.sh",
            python.display()
        );
        let port = free_port();
        let child = Command::new(python)
            .arg(root.join("scripts/llm_server.py"))
            .args([
                "--port",
                &port.to_string(),
                "--parallel",
                "2",
                "--threads",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts the LLM server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let mut server = LlmServer {
            child: Some(child),
            addr,
        };
        if let Some(child) = server.child.as_mut() {
            wait_healthy(child, addr, "the LLM server");
        }
        server
    }

    /// The OpenAI base URL (`http://ADDR/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Kills the server (a crash, as far as clients can tell).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LlmServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (up to a minute) until the server `child` started answers `GET /health` with 200
/// on `addr`; fails the test naming `what` if it exits or does not.
fn wait_healthy(child: &mut Child, addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers_health(addr) {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not become healthy on {addr} within a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn answers_health(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A real OTLP/HTTP trace receiver (`scripts/otlp_receiver.py`, decoding with the
/// official OpenTelemetry protobuf definitions) writing the spans it receives as JSON lines.
/// Stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    out: PathBuf,
}

impl OtlpReceiver {
    /// Starts one on a free port, appending spans to `out`, and waits until it answers.
    pub fn start(out: PathBuf) -> OtlpReceiver {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".tools/venv/bin/python");
        assert!(
            python.exists(),
            "the OTLP receiver's Python is not installed at {}: run scripts/setup.sh",
            python.display()
        );
        let port = free_port();
        let mut child = Command::new(python)
            .arg(root.join("scripts/otlp_receiver.py"))
            .args(["--port", &port.to_string()])
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .spawn()
            .expect("starts scripts/otlp_receiver.py");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        wait_healthy(&mut child, addr, "the OTLP receiver");
        OtlpReceiver { child, addr, out }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far. The receiver may be writing while this reads: a last
    /// line without its line break is still being written and waits for the next call.
    pub fn spans(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("the receiver writes JSON lines"))
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server that accepts connections and never answers: what a hung upstream looks
/// like to a client. Stops when dropped.
#[derive(Debug)]
pub struct SilentServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentServer {
    /// Starts listening on a free loopback port.
    pub fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = listener.local_addr().expect("address");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        SilentServer { addr, stop }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
