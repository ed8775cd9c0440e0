//! A tiny HTTP/1.1 server for unit tests of the layers that talk HTTP (auth,
//! the API client): it answers each request with the next answer of a
//! script, and records what it was asked and when. One connection per
//! request (`Connection: close`), so the order of answers is the order in
//! which requests arrive.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// One scripted answer.
pub struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_string(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{}",
            self.status,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Asked {
    /// Path and query, as sent.
    pub target: String,
    pub body: String,
    pub at: Instant,
}

pub struct ScriptedServer {
    /// `http://127.0.0.1:PORT/`.
    pub url: Url,
    asked: Arc<Mutex<Vec<Asked>>>,
}

impl ScriptedServer {
    /// Serves `script` in order; a request after the last answer gets 500.
    pub async fn start(script: Vec<Answer>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = script
                    .next()
                    .unwrap_or_else(|| Answer::json(500, r#"{"error":"script ran out"}"#));
                // Recorded before the answer goes out: a test that has its
                // answer sees the request.
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                record.lock().unwrap().push(request);
                let _ = stream.write_all(&answer.bytes()).await;
            }
        });
        ScriptedServer {
            url: Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            asked,
        }
    }

    /// What the server was asked so far, in order.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

/// Reads one request from `stream`.
async fn read_request(stream: &mut TcpStream) -> Option<Asked> {
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    let header_end = loop {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            return None;
        }
        bytes.extend_from_slice(&buffer[..read]);
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&bytes[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while bytes.len() < header_end + length {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buffer[..read]);
    }
    let target = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let body = String::from_utf8_lossy(&bytes[header_end..]).to_string();
    Some(Asked { target, body, at })
}
