//! A raw TCP server with canned answers, for answers no real server would give.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the canned server does with each connection.
#[derive(Clone)]
pub enum Behaviour {
    /// Reads the request, writes these bytes, closes.
    Answer(Vec<u8>),
    /// Reads the request and says nothing until the client gives up.
    Silent,
}

/// Serves `behaviour` on `127.0.0.1:0` until dropped.
pub struct CannedServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A complete HTTP/1.1 answer with `status`, `content_type` and `body`.
pub fn http_answer(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Canned\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl CannedServer {
    /// Starts the server.
    pub fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let head = read_request(&mut stream);
                if !head.is_empty() {
                    seen.lock().unwrap().push(head);
                }
                match &behaviour {
                    Behaviour::Answer(bytes) => {
                        let _ = stream.write_all(bytes);
                        let _ = stream.flush();
                    }
                    Behaviour::Silent => held.push(stream),
                }
            }
        });
        Self {
            url: format!("http://{addr}"),
            requests,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The heads (request line and headers, as sent, header names lower-cased)
    /// of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Reads one request; returns its head.
fn read_request(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return String::new(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let lower = head.to_ascii_lowercase();
            let len = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let mut lines = head.lines();
                let line = lines.next().unwrap_or_default().to_owned();
                let headers: Vec<String> = lines
                    .map(|l| match l.split_once(':') {
                        Some((n, v)) => format!("{}:{v}", n.to_ascii_lowercase()),
                        None => l.to_owned(),
                    })
                    .collect();
                return std::iter::once(line)
                    .chain(headers)
                    .collect::<Vec<_>>()
                    .join("\n");
            }
        }
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
