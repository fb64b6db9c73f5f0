//! The remote backends the studio uses: one pool per protocol, shared by the
//! app (which sets them from the settings and shows their state) and the
//! text and image threads (which run remote jobs on them). A health thread
//! asks each due backend for its models once a second (healthy ones every
//! 15 s, paused ones after their backoff) and wakes the UI when anything a
//! user sees changed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use super::handle::Waker;
use crate::hub::config::Token;
use crate::remote::RemoteServer;
use crate::remote::pool::Pool;
use crate::spec::backend::{BackendConfig, BackendHealth, BackendKind, BackendView};

/// How often the health thread looks for due checks.
const TICK: Duration = Duration::from_secs(1);

struct Pools {
    openai: Pool,
    a1111: Pool,
    /// Backends whose URL did not parse, with why.
    invalid: Vec<(BackendConfig, String)>,
}

impl Default for Pools {
    fn default() -> Self {
        Self {
            openai: Pool::new(BackendKind::OpenAi, Vec::new()),
            a1111: Pool::new(BackendKind::A1111, Vec::new()),
            invalid: Vec::new(),
        }
    }
}

/// The shared pools (cheap to clone).
#[derive(Clone)]
pub struct Backends {
    pools: Arc<RwLock<Pools>>,
}

impl Backends {
    /// Empty pools and their health thread, which wakes the UI through `waker`.
    pub fn start(waker: Waker) -> Self {
        let backends = Self { pools: Arc::new(RwLock::new(Pools::default())) };
        let weak = Arc::downgrade(&backends.pools);
        let _ = std::thread::Builder::new().name("backend-health".into()).spawn(move || health(&weak, &waker));
        backends
    }

    /// Uses `configs` from now on (each with its key from `keys`); their
    /// health is checked at the next tick.
    pub fn set(&self, configs: &[BackendConfig], keys: &BTreeMap<String, Token>) {
        let mut openai = Vec::new();
        let mut a1111 = Vec::new();
        let mut invalid = Vec::new();
        for config in configs {
            match RemoteServer::new(&config.url, keys.get(&config.url).cloned()) {
                Ok(server) if config.kind == BackendKind::OpenAi => openai.push((config.clone(), server)),
                Ok(server) if config.kind == BackendKind::A1111 => a1111.push((config.clone(), server)),
                Ok(_) => {}
                Err(e) => invalid.push((config.clone(), e.to_string())),
            }
        }
        let Ok(mut current) = self.pools.write() else { return };
        // A pool whose backends did not change keeps its state (health, models, counts).
        let same = |pool: &Pool, new: &[(BackendConfig, RemoteServer)]| {
            pool.configs().iter().eq(new.iter().map(|(config, _)| config)) && !keys_changed(pool, keys)
        };
        if !same(&current.openai, &openai) {
            current.openai = Pool::new(BackendKind::OpenAi, openai);
        }
        if !same(&current.a1111, &a1111) {
            current.a1111 = Pool::new(BackendKind::A1111, a1111);
        }
        current.invalid = invalid;
    }

    /// The text servers.
    pub fn openai(&self) -> Pool {
        self.pools.read().map(|p| p.openai.clone()).unwrap_or_else(|_| Pool::new(BackendKind::OpenAi, Vec::new()))
    }

    /// The image servers.
    pub fn a1111(&self) -> Pool {
        self.pools.read().map(|p| p.a1111.clone()).unwrap_or_else(|_| Pool::new(BackendKind::A1111, Vec::new()))
    }

    /// Every backend's state, text servers first.
    pub fn views(&self) -> Vec<BackendView> {
        let Ok(pools) = self.pools.read() else { return Vec::new() };
        let invalid = pools.invalid.iter().map(|(config, error)| BackendView {
            config: config.clone(),
            health: BackendHealth::Paused { failures: 0, retry_in_secs: 0, error: error.clone() },
            models: Vec::new(),
            loras: Vec::new(),
            in_flight: 0,
            done: 0,
        });
        pools.openai.views().into_iter().chain(pools.a1111.views()).chain(invalid).collect()
    }
}

/// Whether `keys` differs from the keys `pool`'s servers were made with.
fn keys_changed(pool: &Pool, keys: &BTreeMap<String, Token>) -> bool {
    pool.keys().iter().any(|(url, key)| keys.get(url) != key.as_ref())
}

/// Checks due backends once a tick; wakes the UI when a view changed. Ends
/// when the app drops the pools.
fn health(pools: &Weak<RwLock<Pools>>, waker: &Waker) {
    let mut shown = Vec::new();
    loop {
        let Some(strong) = pools.upgrade() else { return };
        let backends = Backends { pools: strong };
        let (openai, a1111) = (backends.openai(), backends.a1111());
        openai.check_due();
        a1111.check_due();
        // What a user sees, without the countdown (which would wake the UI every second).
        let views: Vec<_> = backends
            .views()
            .into_iter()
            .map(|mut v| {
                if let BackendHealth::Paused { retry_in_secs, .. } = &mut v.health {
                    *retry_in_secs = 0;
                }
                v
            })
            .collect();
        drop(backends);
        if views != shown {
            shown = views;
            waker();
        }
        std::thread::sleep(TICK);
    }
}
