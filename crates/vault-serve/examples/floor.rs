//! The floor of `scripts/bench serve`: the least a hyper 1 server can do
//! for one request, on the runtime `tokvault serve` runs on (tokio,
//! multi-thread, two workers). Every request, whatever its method, path or
//! headers, gets the same fixed JSON body, of the shape and size of a
//! Compute Engine token answer with a 200-character access token.
//!
//! ```sh
//! cargo run --release -p vault-serve --example floor [-- ADDR]   # ADDR: 127.0.0.1:0
//! ```
//!
//! Prints `listening on ADDR` as its first line once it accepts
//! connections, like `tokvault serve`, and serves until it is killed.

use std::convert::Infallible;
use std::error::Error;
use std::io::Write as _;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The length of the access token in the answer.
const TOKEN_LENGTH: usize = 200;

/// `{"access_token":"ya29.AAA…","expires_in":3599,"token_type":"Bearer"}`.
fn answer() -> Bytes {
    let token: String = "ya29."
        .chars()
        .chain(
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
                .chars()
                .cycle(),
        )
        .take(TOKEN_LENGTH)
        .collect();
    Bytes::from(format!(
        r#"{{"access_token":"{token}","expires_in":3599,"token_type":"Bearer"}}"#
    ))
}

fn main() -> Result<(), Box<dyn Error>> {
    let address: SocketAddr = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(address))
}

async fn serve(address: SocketAddr) -> Result<(), Box<dyn Error>> {
    let listener = TcpListener::bind(address).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_addr()?)?;
        stdout.flush()?;
    }
    let body = answer();
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: the next accept may succeed.
            Err(_) => continue,
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_request: Request<_>| {
                let mut reply = Response::new(Full::new(body.clone()));
                reply
                    .headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                async move { Ok::<_, Infallible>(reply) }
            });
            // A client that goes away mid-request is not the floor's concern.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
