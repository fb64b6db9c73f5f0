//! Many servers at once. A job for a model goes to the least-loaded
//! healthy backend that has it; when that server dies, times out or is
//! busy, the job is run again on the next one, so the caller gets exactly
//! one result (and writes its output once). A backend that fails is paused
//! and asked again after a backoff that doubles per failure (1 s … 60 s);
//! health checks list its models, which is also how models are found.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::http::{RemoteError, RemoteServer};
use crate::hub::config::Token;
use crate::spec::backend::{BackendConfig, BackendHealth, BackendKind, BackendView};

/// First pause after a failure; it doubles per failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A healthy backend is checked again this often.
const RECHECK: Duration = Duration::from_secs(15);

/// A backend's state: what the UI sees of it, and when it is due again.
struct State {
    view: BackendView,
    /// A paused backend is asked again at this time.
    retry_at: Instant,
    /// When it was last asked for its models.
    checked_at: Option<Instant>,
}

struct Backend {
    server: RemoteServer,
    state: Mutex<State>,
}

/// Every remote backend of one kind the user added.
#[derive(Clone)]
pub struct Pool {
    kind: BackendKind,
    backends: Arc<Vec<Backend>>,
}

impl Pool {
    /// A pool of `servers` (each with its config), all speaking `kind`.
    pub fn new(kind: BackendKind, servers: Vec<(BackendConfig, RemoteServer)>) -> Self {
        let backends = servers
            .into_iter()
            .map(|(config, server)| Backend {
                server,
                state: Mutex::new(State {
                    view: BackendView {
                        config,
                        health: BackendHealth::Unknown,
                        models: Vec::new(),
                        loras: Vec::new(),
                        in_flight: 0,
                        done: 0,
                    },
                    retry_at: Instant::now(),
                    checked_at: None,
                }),
            })
            .collect();
        Self { kind, backends: Arc::new(backends) }
    }

    /// Asks every backend that is due (never asked, paused past its
    /// backoff, or healthy and not asked for a while) for its models.
    pub fn check_due(&self) {
        for backend in self.backends.iter() {
            let due = {
                let state = lock(&backend.state);
                match &state.view.health {
                    BackendHealth::Unknown => true,
                    BackendHealth::Paused { .. } => Instant::now() >= state.retry_at,
                    BackendHealth::Healthy => state.checked_at.is_none_or(|t| t.elapsed() >= RECHECK),
                }
            };
            if due {
                self.check(backend);
            }
        }
    }

    /// Asks every backend now, whatever its state.
    pub fn check_all(&self) {
        for backend in self.backends.iter() {
            self.check(backend);
        }
    }

    fn check(&self, backend: &Backend) {
        let listed = match self.kind {
            BackendKind::OpenAi => super::openai::list_models(&backend.server).map(|models| (models, Vec::new())),
            BackendKind::A1111 => super::a1111::catalogue(&backend.server).map(|c| (c.models, c.loras)),
            BackendKind::Local => Ok((Vec::new(), Vec::new())),
        };
        lock(&backend.state).checked_at = Some(Instant::now());
        match listed {
            Ok((models, loras)) => {
                let view = &mut lock(&backend.state).view;
                view.models = models;
                view.loras = loras;
                view.health = BackendHealth::Healthy;
            }
            Err(e) => pause(backend, &e),
        }
    }

    /// Every backend's state, in the order they were added.
    pub fn views(&self) -> Vec<BackendView> {
        self.backends
            .iter()
            .map(|b| {
                let state = lock(&b.state);
                let mut view = state.view.clone();
                if let BackendHealth::Paused { retry_in_secs, .. } = &mut view.health {
                    *retry_in_secs = state.retry_at.saturating_duration_since(Instant::now()).as_secs();
                }
                view
            })
            .collect()
    }

    /// The backends' kind.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Each backend's URL with the key its server sends.
    pub fn keys(&self) -> Vec<(String, Option<Token>)> {
        self.backends.iter().map(|b| (b.server.base().to_owned(), b.server.key().cloned())).collect()
    }

    /// The backends' settings, in order.
    pub fn configs(&self) -> Vec<BackendConfig> {
        self.backends.iter().map(|b| lock(&b.state).view.config.clone()).collect()
    }

    /// Runs `job` on the least-loaded healthy backend that has `model`; if
    /// it fails in a way another backend may not (unreachable, died
    /// mid-way, busy, a server error), that backend is paused and the job
    /// runs on the next. `on_attempt` hears each backend tried, before the
    /// job runs there. The result comes with the URL of the backend that
    /// produced it.
    pub fn run<T>(
        &self,
        model: Option<&str>,
        on_attempt: &mut dyn FnMut(&str, usize),
        job: &mut dyn FnMut(&RemoteServer) -> Result<T, RemoteError>,
    ) -> Result<(T, String), RemoteError> {
        let mut tried = Vec::new();
        let mut last_error = None;
        loop {
            let mut picked = self.pick(model, &tried);
            if picked.is_none() && tried.is_empty() {
                // Backends not asked yet (just added, or the app just started) are asked now.
                self.check_due();
                picked = self.pick(model, &tried);
            }
            let Some(index) = picked else {
                return Err(last_error.unwrap_or_else(|| {
                    let what = model.map_or_else(
                        || "no backend is healthy".to_owned(),
                        |m| format!("no healthy backend has the model {m:?}"),
                    );
                    RemoteError::Invalid(what)
                }));
            };
            tried.push(index);
            let backend = &self.backends[index];
            let url = backend.server.base().to_owned();
            on_attempt(&url, tried.len());
            lock(&backend.state).view.in_flight += 1;
            let result = job(&backend.server);
            let mut state = lock(&backend.state);
            state.view.in_flight -= 1;
            match result {
                Ok(value) => {
                    state.view.done += 1;
                    return Ok((value, url));
                }
                Err(e) if e.is_retryable() => {
                    drop(state);
                    pause(backend, &e);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The least-loaded healthy backend listing `model` (any, with `None`),
    /// not in `tried` (ties go to the one added first).
    fn pick(&self, model: Option<&str>, tried: &[usize]) -> Option<usize> {
        self.backends
            .iter()
            .enumerate()
            .filter(|(i, _)| !tried.contains(i))
            .filter_map(|(i, b)| {
                let view = &lock(&b.state).view;
                let has = model.is_none_or(|model| view.models.iter().any(|m| m == model));
                let usable = view.health == BackendHealth::Healthy && has;
                usable.then_some((view.in_flight, i))
            })
            .min()
            .map(|(_, i)| i)
    }
}

/// Marks `backend` failed: paused for a backoff that doubles per failure in a row.
fn pause(backend: &Backend, error: &RemoteError) {
    let mut state = lock(&backend.state);
    let failures = match &state.view.health {
        BackendHealth::Paused { failures, .. } => failures + 1,
        _ => 1,
    };
    let backoff = FIRST_BACKOFF.saturating_mul(1 << (failures - 1).min(6)).min(MAX_BACKOFF);
    state.retry_at = Instant::now() + backoff;
    state.view.health = BackendHealth::Paused { failures, retry_in_secs: backoff.as_secs(), error: error.to_string() };
}

/// A lock whose poisoning (a panic while held) leaves plain data usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Pool {
        let servers = (0..n)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}", 1 + i);
                (BackendConfig { kind: BackendKind::OpenAi, url: url.clone() }, RemoteServer::new(&url, None).unwrap())
            })
            .collect();
        Pool::new(BackendKind::OpenAi, servers)
    }

    fn set(pool: &Pool, i: usize, health: BackendHealth, models: &[&str], in_flight: usize) {
        let view = &mut lock(&pool.backends[i].state).view;
        view.health = health;
        view.models = models.iter().map(|m| m.to_string()).collect();
        view.in_flight = in_flight;
    }

    #[test]
    fn least_loaded_healthy_backend_with_the_model() {
        let p = pool(3);
        set(&p, 0, BackendHealth::Healthy, &["a"], 2);
        set(&p, 1, BackendHealth::Healthy, &["a", "b"], 1);
        set(&p, 2, BackendHealth::Paused { failures: 1, retry_in_secs: 0, error: "x".into() }, &["a"], 0);
        assert_eq!(p.pick(Some("a"), &[]), Some(1));
        assert_eq!(p.pick(Some("a"), &[1]), Some(0));
        assert_eq!(p.pick(Some("b"), &[1]), None);
        assert_eq!(p.pick(Some("c"), &[]), None);
        assert_eq!(p.pick(None, &[]), Some(1));
    }

    #[test]
    fn a_failing_backend_is_paused_and_the_job_runs_on_the_next_once() {
        let p = pool(2);
        set(&p, 0, BackendHealth::Healthy, &["a"], 0);
        set(&p, 1, BackendHealth::Healthy, &["a"], 0);
        let mut runs = Vec::new();
        let (value, url) = p
            .run(Some("a"), &mut |_, _| {}, &mut |server| {
                runs.push(server.base().to_owned());
                if runs.len() == 1 { Err(server.dropped("/p", "connection reset")) } else { Ok(7) }
            })
            .unwrap();
        assert_eq!((value, url.as_str()), (7, "http://127.0.0.1:2"));
        assert_eq!(runs, ["http://127.0.0.1:1", "http://127.0.0.1:2"], "once per backend, one result");
        let statuses = p.views();
        assert!(matches!(statuses[0].health, BackendHealth::Paused { failures: 1, .. }));
        assert_eq!((statuses[1].done, statuses[1].in_flight), (1, 0));
        // A refusal of the request itself is not retried elsewhere.
        let refused =
            p.run(Some("a"), &mut |_, _| {}, &mut |s| -> Result<(), _> { Err(s.bad_answer("/p", "nonsense")) });
        assert!(matches!(refused, Err(RemoteError::BadAnswer { .. })));
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let p = pool(1);
        let error = RemoteError::Invalid("down".into());
        let mut waits = Vec::new();
        for _ in 0..9 {
            pause(&p.backends[0], &error);
            let retry_at = lock(&p.backends[0].state).retry_at;
            waits.push((retry_at - Instant::now()).as_secs_f64().round() as u64);
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_job_asks_backends_not_checked_yet_before_giving_up() {
        let p = pool(1);
        let err = p.run(Some("a"), &mut |_, _| {}, &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("no healthy backend has the model \"a\""), "{err}");
        assert!(matches!(p.views()[0].health, BackendHealth::Paused { .. }), "the job's pick asked it first");
    }

    #[test]
    fn unreachable_backends_are_paused_by_the_check() {
        let p = pool(1);
        p.check_due();
        assert!(matches!(p.views()[0].health, BackendHealth::Paused { failures: 1, .. }));
    }
}
