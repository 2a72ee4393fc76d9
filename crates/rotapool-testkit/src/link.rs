//! A TCP link in front of a server, which a test can cut or freeze to play a server that was killed or stopped.
//!
//! Tests reach moto through a link of their own, so that one test's store outage touches no other test, and the
//! real AWS SDK meets the fault exactly as it would meet a dead or frozen endpoint: connections refused, or
//! accepted and never answered.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// What the link does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Bytes flow both ways.
    Up,
    /// As if the server were killed: open connections are reset and new ones refused.
    Down,
    /// As if the server were stopped (SIGSTOP): connections are accepted, bytes are held, nothing is answered.
    /// Held bytes flow once the link is up again.
    Frozen,
}

/// A TCP link from a port of its own on 127.0.0.1 to a server's port. Runs on the runtime that starts it.
#[derive(Debug, Clone)]
pub struct FaultyLink {
    port: u16,
    state: Arc<watch::Sender<LinkState>>,
    held: Arc<AtomicU64>,
}

impl FaultyLink {
    /// A link to `127.0.0.1:target_port`, up.
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the loopback interface accepts a listener");
        let port = listener.local_addr().expect("a bound listener").port();
        let state = Arc::new(watch::Sender::new(LinkState::Up));
        let held = Arc::new(AtomicU64::new(0));
        tokio::spawn(accept_loop(
            listener,
            target_port,
            state.subscribe(),
            held.clone(),
        ));
        Self { port, state, held }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, for an HTTP server behind the link.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Changes what the link does, at once for open connections too.
    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    /// How many requests the link has held while frozen, since it started: each time a client's bytes arrived
    /// and were held instead of passed on. The link reads nothing more from a connection whose bytes it holds, so
    /// a client that sends a request and awaits the answer (as an HTTP client does) counts once per freeze: this
    /// is the number of requests that hung. Bytes the server sends are not counted.
    pub fn held_requests(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    target: u16,
    mut state: watch::Receiver<LinkState>,
    held: Arc<AtomicU64>,
) {
    let port = listener.local_addr().expect("a bound listener").port();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                tokio::spawn(carry(client, target, state.clone(), held.clone()));
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                if *state.borrow_and_update() == LinkState::Down {
                    // Closing the listener refuses new connections, as a dead server's port does.
                    drop(listener);
                    if state.wait_for(|s| *s != LinkState::Down).await.is_err() {
                        return;
                    }
                    listener = rebind(port).await;
                }
            }
        }
    }
}

/// Listens on `port` again; the port was ours a moment ago, so only a brief race can keep it.
async fn rebind(port: u16) -> TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not listen on 127.0.0.1:{port} again")
}

/// Carries one connection until either side closes it or the link goes down.
async fn carry(
    client: TcpStream,
    target: u16,
    state: watch::Receiver<LinkState>,
    held: Arc<AtomicU64>,
) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Whichever direction ends first (close, error, link down) ends the other: dropping both halves resets.
    tokio::select! {
        _ = pump(client_read, server_write, state.clone(), Some(held)) => {}
        _ = pump(server_read, client_write, state, None) => {}
    }
}

/// Carries bytes one way. `held`, given for the client's side only, counts the reads held while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    held: Option<Arc<AtomicU64>>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = state.wait_for(|s| *s == LinkState::Down) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Frozen: hold the bytes until the link is up again, or drop them with the connection if it goes down.
        if let Some(held) = held
            .as_ref()
            .filter(|_| *state.borrow() == LinkState::Frozen)
        {
            held.fetch_add(1, Ordering::Relaxed);
        }
        match state.wait_for(|s| *s != LinkState::Frozen).await {
            Ok(s) if *s == LinkState::Up => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
