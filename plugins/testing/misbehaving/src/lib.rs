//! Test plugin for the host's containment: the configuration
//! (`{"mode": "loop"}`) names how it misbehaves on every review.
//!
//! - `allow`: allows (and logs a line);
//! - `loop`: never returns;
//! - `bomb`: grows its memory until refused, then traps;
//! - `trap`: traps at once;
//! - `bad-patch`: allows with a patch that is not JSON;
//! - `warn`: allows with a warning for the client, and logs it;
//! - `slow`: sleeps the configuration's `millis` (default 100; a blocking
//!   host call), then allows;
//! - `reach`: writes a line to stdout, then allows, warning what it could
//!   reach: the environment variable `GREETING`, the file
//!   `/data/greeting.txt`, and a TCP connection to the address in the
//!   configuration's `peer`.

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "admission-policy",
    path: "../../../wit",
});

use engenho::plugins::admission_types::{Decision, Review};
use engenho::plugins::log::{Level, log};
use exports::engenho::plugins::policy::Guest;

thread_local! {
    static MODE: RefCell<String> = const { RefCell::new(String::new()) };
    static PEER: RefCell<String> = const { RefCell::new(String::new()) };
    static MILLIS: RefCell<u64> = const { RefCell::new(100) };
}

struct Misbehaving;

impl Guest for Misbehaving {
    fn configure(config: String) -> Result<(), String> {
        let mode =
            config.split_once("\"mode\"").and_then(|(_, rest)| rest.split('"').nth(1)).unwrap_or_default().to_owned();
        if !["allow", "loop", "bomb", "trap", "bad-patch", "warn", "reach", "slow"].contains(&mode.as_str()) {
            return Err(format!("unknown mode {mode:?}"));
        }
        let peer = config.split_once("\"peer\"").and_then(|(_, rest)| rest.split('"').nth(1)).unwrap_or("127.0.0.1:9");
        PEER.with(|p| *p.borrow_mut() = peer.to_owned());
        let millis = config
            .split_once("\"millis\"")
            .and_then(|(_, rest)| rest.trim_start_matches([' ', ':']).split([',', '}']).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(100);
        MILLIS.with(|m| *m.borrow_mut() = millis);
        MODE.with(|m| *m.borrow_mut() = mode);
        Ok(())
    }

    fn admit(review: Review) -> Decision {
        let mode = MODE.with(|m| m.borrow().clone());
        match mode.as_str() {
            "loop" => {
                let mut spins: u64 = 0;
                loop {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => std::process::abort(),
            "slow" => {
                std::thread::sleep(std::time::Duration::from_millis(MILLIS.with(|m| *m.borrow())));
                Decision { allowed: true, reason: String::new(), patch: String::new(), warnings: Vec::new() }
            }
            "bad-patch" => {
                Decision { allowed: true, reason: String::new(), patch: "{not json".into(), warnings: Vec::new() }
            }
            "reach" => {
                let written = std::io::Write::write_all(&mut std::io::stdout(), b"reaching out\n")
                    .and_then(|()| std::io::Write::flush(&mut std::io::stdout()));
                let variable = std::env::var("GREETING").unwrap_or_else(|_| "no variable".into());
                let file = std::fs::read_to_string("/data/greeting.txt").unwrap_or_else(|e| format!("no file ({e})"));
                let peer = PEER.with(|p| p.borrow().clone());
                let connection = match std::net::TcpStream::connect(peer.as_str()) {
                    Ok(_) => "connected".to_owned(),
                    Err(e) => format!("no connection ({e})"),
                };
                Decision {
                    allowed: true,
                    reason: String::new(),
                    patch: String::new(),
                    warnings: vec![
                        format!(
                            "stdout: {}",
                            written.map_or_else(|e| format!("not written ({e})"), |()| "written".into())
                        ),
                        format!("environment: {variable}"),
                        format!("file: {}", file.trim()),
                        format!("network: {connection}"),
                    ],
                }
            }
            "warn" => {
                log(Level::Warn, &format!("{} {} looks risky", review.kind, review.name));
                Decision {
                    allowed: true,
                    reason: String::new(),
                    patch: String::new(),
                    warnings: vec![format!("{} {} looks risky", review.kind, review.name)],
                }
            }
            _ => {
                log(Level::Info, &format!("allowing {} {}", review.kind, review.name));
                Decision { allowed: true, reason: String::new(), patch: String::new(), warnings: Vec::new() }
            }
        }
    }
}

export!(Misbehaving);
