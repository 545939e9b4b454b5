//! A flaky TCP proxy between runners and the bus's `git daemon`: each new connection is, at
//! set rates, dropped at once (accepted, then closed), reset part-way (forwarded for a few
//! kilobytes, then closed with an RST), or delayed before it is forwarded. The rest pass
//! unharmed. Rates are per connection and drawn from a seeded generator, so a run can be
//! repeated; counts of what was done are kept for the figures.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often each fault happens, per connection (0.0 to 1.0).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub drop: f64,
    pub reset: f64,
    pub delay: f64,
    /// How long a delayed connection waits before it is forwarded.
    pub delay_by: Duration,
    pub seed: u64,
}

/// What the proxy did so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub connections: AtomicU64,
    pub dropped: AtomicU64,
    pub reset: AtomicU64,
    pub delayed: AtomicU64,
}

impl Counts {
    pub fn faults(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
            + self.reset.load(Ordering::SeqCst)
            + self.delayed.load(Ordering::SeqCst)
    }
}

/// A running proxy; it stops accepting when dropped.
pub struct Proxy {
    pub addr: SocketAddr,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
}

/// xorshift64*: enough randomness for fault injection, no dependency.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

enum Fate {
    Drop,
    Reset(u64),
    Delay,
    Pass,
}

impl Proxy {
    /// Listen on 127.0.0.1 (a free port) and forward to `upstream`.
    pub fn start(upstream: SocketAddr, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("proxy address");
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (counts.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(faults.seed | 1);
            while !s.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                c.connections.fetch_add(1, Ordering::SeqCst);
                let roll = rng.unit();
                let fate = if roll < faults.drop {
                    Fate::Drop
                } else if roll < faults.drop + faults.reset {
                    Fate::Reset(256 + (rng.unit() * 8192.0) as u64)
                } else if roll < faults.drop + faults.reset + faults.delay {
                    Fate::Delay
                } else {
                    Fate::Pass
                };
                let c = c.clone();
                std::thread::spawn(move || serve(client, upstream, fate, faults.delay_by, &c));
            }
        });
        Proxy { addr, counts, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, fate: Fate, delay_by: Duration, c: &Counts) {
    let _ = client.set_nonblocking(false);
    let limit = match fate {
        Fate::Drop => {
            c.dropped.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        Fate::Reset(after) => {
            c.reset.fetch_add(1, Ordering::SeqCst);
            Some(after)
        }
        Fate::Delay => {
            c.delayed.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(delay_by);
            None
        }
        Fate::Pass => None,
    };
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let budget = Arc::new(AtomicU64::new(limit.unwrap_or(u64::MAX)));
    let b2 = budget.clone();
    let up = std::thread::spawn(move || pump(client2, server2, &b2));
    pump(server, client, &budget);
    let _ = up.join();
}

/// Copy `from` to `to` until either side closes or the shared byte budget runs out; then
/// reset both (SO_LINGER 0 makes close send an RST).
fn pump(mut from: TcpStream, mut to: TcpStream, budget: &AtomicU64) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n as u64,
        };
        let left = budget.fetch_sub(n.min(budget.load(Ordering::SeqCst)), Ordering::SeqCst);
        if left < n {
            let _ = to.write_all(&buf[..left as usize]);
            reset(&from);
            reset(&to);
            return;
        }
        if to.write_all(&buf[..n as usize]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `linger` for the given size; the fd is open while we hold it.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}
