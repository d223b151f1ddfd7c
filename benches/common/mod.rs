//! What the HTTP benchmarks share: the integration key their catalogs use,
//! a minimal keep-alive HTTP/1.1 client, a readiness wait and an event body.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The integration key every benchmark catalog declares.
const KEY: &str = "bench-key-0123456789abcdef";

pub async fn wait_ready(addr: SocketAddr) {
    for _ in 0..400 {
        if let Ok(mut conn) = Connection::open(addr).await {
            if let Ok((status, _)) = conn.request("GET", "/readyz", "").await {
                if status == 200 {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("rouse did not become ready");
}

pub fn event(key: &str) -> String {
    format!(
        r#"{{"action":"trigger","dedup_key":"{key}","summary":"CPU over 90% on web-1","severity":"critical","source":"web-1","labels":{{"alertname":"HighCpu","instance":"web-1:9100"}}}}"#
    )
}

/// A minimal HTTP/1.1 keep-alive client: one request at a time per
/// connection, like wrk, with as little client overhead as possible.
pub struct Connection {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
            request: Vec::with_capacity(1024),
            line: String::new(),
        })
    }

    /// Returns the status and the body.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        self.request.clear();
        self.request.extend_from_slice(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: bench\r\nX-Rouse-Key: {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        self.request.extend_from_slice(body.as_bytes());
        self.reader.get_mut().write_all(&self.request).await?;
        self.line.clear();
        self.reader.read_line(&mut self.line).await?;
        let status: u16 = self
            .line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other("bad status line"))?;
        let mut length = 0usize;
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).await?;
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).await?;
        Ok((status, body))
    }
}
