//! An in-process HTTP/1.1 server on 127.0.0.1 for what a real authorization
//! server will not do on demand: errors, stalls, garbage, truncation,
//! redirects, huge bodies. Each request gets the next scripted action (the
//! last one repeats). Raw TCP, so a response can be cut or never sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Action {
    /// A complete response.
    Respond {
        /// HTTP status.
        status: u16,
        /// Headers besides `Content-Length`.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Like `Respond`, after a pause.
    Delayed(Duration, Box<Action>),
    /// Read the request and never answer.
    Stall,
    /// Declare `declared` bytes of body, send `body`, close.
    Truncate {
        /// The `Content-Length` sent.
        declared: usize,
        /// What is actually sent.
        body: Vec<u8>,
    },
    /// A chunked body of `size` bytes without a Content-Length.
    ChunkedHuge {
        /// Bytes sent in all.
        size: usize,
    },
    /// Forwards the request to `url` (a real server) and answers with its
    /// status and body, the body passed through `rewrite`: a real server's
    /// answers, mangled.
    Forward {
        /// The real server's endpoint.
        url: String,
        /// What to make of its body.
        rewrite: fn(&str) -> String,
    },
}

impl Action {
    /// A JSON response.
    pub fn json(status: u16, body: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// The same response with one more header.
    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Self::Respond {
                status,
                mut headers,
                body,
            } => {
                headers.push((name.into(), value.into()));
                Self::Respond {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    /// A token response: `access_token`, Bearer, valid an hour.
    pub fn token(access_token: &str) -> Self {
        Self::json(
            200,
            &format!(
                r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":3600}}"#
            ),
        )
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request line and headers.
    pub head: String,
    /// The body.
    pub body: String,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// A form field of the body.
    pub fn form(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

type Responder = dyn Fn(&Received) -> Action + Send + Sync;
type ConnectionState = (
    Arc<Mutex<Vec<Received>>>,
    Arc<Responder>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
);

/// The server; it stops when dropped.
pub struct FaultServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Every request, in order.
    pub received: Arc<Mutex<Vec<Received>>>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// The most requests in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultServer {
    /// Scripted: request n gets `script[min(n, len-1)]`.
    pub async fn scripted(script: Vec<Action>) -> Self {
        assert!(!script.is_empty());
        let counter = AtomicUsize::new(0);
        Self::with(move |_| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            script[n.min(script.len() - 1)].clone()
        })
        .await
    }

    /// Computes each answer from the request.
    pub async fn with(responder: impl Fn(&Received) -> Action + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let responder: Arc<Responder> = Arc::new(responder);
        let task = {
            let (received, connections, max_in_flight) =
                (received.clone(), connections.clone(), max_in_flight.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let state = (
                        received.clone(),
                        responder.clone(),
                        in_flight.clone(),
                        max_in_flight.clone(),
                    );
                    tokio::spawn(serve(stream, state));
                }
            })
        };
        Self {
            port,
            received,
            connections,
            max_in_flight,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("not poisoned").clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    (received, responder, in_flight, max_in_flight): ConnectionState,
) {
    let mut buffer = Vec::new();
    // Keep-alive: serve requests on this connection until it closes.
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_in_flight.fetch_max(now, Ordering::SeqCst);
        received.lock().expect("not poisoned").push(request.clone());
        let action = responder(&request);
        let keep_open = respond(&mut stream, action, &request).await;
        in_flight.fetch_sub(1, Ordering::SeqCst);
        if !keep_open {
            return;
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned();
            buffer.drain(..end + 4 + length);
            return Some(Received { head, body });
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes the action's bytes; returns whether the connection stays usable.
async fn respond(stream: &mut TcpStream, action: Action, request: &Received) -> bool {
    match action {
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(&body).await.is_ok()
        }
        Action::Delayed(pause, action) => {
            tokio::time::sleep(pause).await;
            Box::pin(respond(stream, *action, request)).await
        }
        Action::Stall => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            false
        }
        Action::Truncate { declared, body } => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
            false
        }
        Action::Forward { url, rewrite } => {
            let (status, body) = forward(&url, request).await;
            let answer = Action::json(status, &rewrite(&body));
            Box::pin(respond(stream, answer, request)).await
        }
        Action::ChunkedHuge { size } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return false;
            }
            let piece = vec![b'a'; 16 * 1024];
            let mut sent = 0;
            while sent < size {
                let frame = format!("{:x}\r\n", piece.len());
                if stream.write_all(frame.as_bytes()).await.is_err()
                    || stream.write_all(&piece).await.is_err()
                    || stream.write_all(b"\r\n").await.is_err()
                {
                    return false;
                }
                sent += piece.len();
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
            false
        }
    }
}

/// POSTs `request`'s body to `url` with its content type and authorization.
async fn forward(url: &str, request: &Received) -> (u16, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut post = client.post(url).body(request.body.clone());
    for name in ["content-type", "authorization"] {
        if let Some(value) = request.header(name) {
            post = post.header(name, value);
        }
    }
    let response = post.send().await.expect("the upstream server answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}
