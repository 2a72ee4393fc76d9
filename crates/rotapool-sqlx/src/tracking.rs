//! Which credentials generation each of sqlx's connections logged in with, and so when it retires.
//!
//! sqlx's hooks see a connection and its age, but no identity, and a connection has no place for a tag. So
//! `after_connect` files a [`Tag`] under the moment the connection was made, and the other hooks find it again
//! from `now - age` (sqlx's age counts from just after `after_connect`, microseconds later).
//!
//! The generation is exact for a connection opened by [`crate::RotatingPool::acquire`]: it connects holding a
//! read lock on the options' generation, which an options swap waits for, and names that generation in a task
//! local that `after_connect` (which runs in the same task) reads. A connection sqlx opens for the plain `&Pool`
//! path or for `min_connections` may have read the options before or after a swap; it is filed under the
//! generation that was applied one `acquire_timeout` before it was made (sqlx gives up a connect after that
//! long), so at worst a new connection opened soon after a swap retires once more than it had to, and an old
//! one never passes for new.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rotapool_core::{Backend, LoginPermit, RotatingLogin, Tag};

/// What [`crate::RotatingPool::acquire`] tells the hooks that run in its task: the generation of the options a
/// connect it makes uses, and the login permit it holds, if any.
#[derive(Debug)]
pub(crate) struct Connecting {
    pub(crate) generation: u64,
    pub(crate) permit: std::cell::RefCell<Option<LoginPermit>>,
}

tokio::task_local! {
    /// Set by [`crate::RotatingPool::acquire`] around sqlx's `acquire`.
    pub(crate) static CONNECTING_AS: Connecting;
    /// What the hooks learned about the connection [`crate::RotatingPool::acquire`] is given.
    pub(crate) static LENT: std::cell::Cell<Option<ConnectionInfo>>;
}

/// What rotapool knows about a connection it lent: the credentials generation it logged in with, and when it
/// was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The generation of the credentials the connection logged in with.
    pub generation: u64,
    /// When it was made.
    pub created: Instant,
}

/// Tells [`crate::RotatingPool::acquire`], if it is the caller, about the connection it is given.
fn lend(generation: u64, created: Instant) {
    let _ = LENT.try_with(|lent| {
        lent.set(Some(ConnectionInfo {
            generation,
            created,
        }))
    });
}

/// The tags of the pool's connections, by the moment each was made.
#[derive(Debug)]
pub(crate) struct Tracker {
    connections: Mutex<BTreeMap<Instant, Tag>>,
    /// When each generation's options were set on the pool, oldest first (the last few).
    applied: Mutex<Vec<(u64, Instant)>>,
    /// The longest a connect by sqlx can take: its `acquire_timeout`.
    longest_connect: Duration,
    /// The most connections sqlx keeps: tags beyond it belong to connections sqlx closed by itself.
    max_connections: usize,
}

/// How far `now - age` in a hook may fall after the moment `after_connect` filed the connection under.
const FILING_SLACK: Duration = Duration::from_millis(50);

impl Tracker {
    pub(crate) fn new(longest_connect: Duration, max_connections: u32) -> Self {
        Self {
            connections: Mutex::default(),
            applied: Mutex::new(vec![(1, Instant::now())]),
            longest_connect,
            max_connections: max_connections as usize,
        }
    }

    /// Records that `generation`'s options were just set on the pool.
    pub(crate) fn applied(&self, generation: u64) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if applied.len() == 8 {
            applied.remove(0);
        }
        applied.push((generation, Instant::now()));
    }

    /// `after_connect`: files a connection just made, under the generation its login used.
    pub(crate) fn connected<B: Backend>(&self, login: &RotatingLogin<B>) {
        let now = Instant::now();
        // The permit the login was made under, if this connect holds one, says which failed logins it follows.
        let tag = CONNECTING_AS
            .try_with(|connecting| {
                login.opened(connecting.generation, connecting.permit.borrow().as_ref())
            })
            .unwrap_or_else(|_| {
                login.opened(self.generation_before(now - self.longest_connect), None)
            });
        let generation = tag.generation();
        lend(generation, now);
        let mut connections = self.lock();
        let mut key = now;
        while connections.contains_key(&key) {
            key += Duration::from_nanos(1);
        }
        connections.insert(key, tag);
        // sqlx never holds more than `max_connections`: the oldest filings beyond are of connections it closed
        // itself (an idle timeout, a failed ping, a detached connection).
        while connections.len() > self.max_connections {
            connections.pop_first();
        }
    }

    /// `before_acquire` and `after_release`: whether the connection of `age` may be lent (again). One that
    /// should retire is forgotten, since sqlx closes it.
    ///
    /// At check-out on the rotation-aware path, sqlx logs in right after a retirement, in the same call: so the
    /// call first takes a login permit, as every login does, and keeps the connection instead if the
    /// credentials were rejected meanwhile (old sessions may be all that works then).
    pub(crate) async fn keep<B: Backend>(&self, login: &RotatingLogin<B>, age: Duration) -> bool {
        let Some(key) = self.retiring(login, age) else {
            return true;
        };
        let needs_permit = CONNECTING_AS
            .try_with(|connecting| {
                connecting
                    .permit
                    .borrow()
                    .is_none()
                    .then_some(connecting.generation)
            })
            .ok()
            .flatten();
        if let Some(generation) = needs_permit {
            let Some(permit) = login.permit(generation).await else {
                return true;
            };
            let _ =
                CONNECTING_AS.try_with(|connecting| *connecting.permit.borrow_mut() = Some(permit));
        }
        self.lock().remove(&key);
        false
    }

    /// The filing key of the connection of `age` if it should retire; `None` if it may be lent.
    fn retiring<B: Backend>(&self, login: &RotatingLogin<B>, age: Duration) -> Option<Instant> {
        let made = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let mut connections = self.lock();
        let key = connections
            .range(..=made)
            .next_back()
            .map(|(key, _)| *key)
            .filter(|key| made.duration_since(*key) <= FILING_SLACK);
        let key = key.unwrap_or_else(|| {
            // Not filed (forgotten as surplus): filed now, by the time rule.
            let generation = self.generation_before(made - self.longest_connect);
            connections.insert(made, login.opened(generation, None));
            made
        });
        let tag = &connections[&key];
        if login.retirement(tag, || age).is_some() {
            return Some(key);
        }
        lend(tag.generation(), key);
        None
    }

    /// The generation that was applied at `moment`, or the oldest one remembered.
    fn generation_before(&self, moment: Instant) -> u64 {
        let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied
            .iter()
            .rev()
            .find(|(_, at)| *at <= moment)
            .or(applied.first())
            .map_or(1, |(generation, _)| *generation)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Instant, Tag>> {
        // Plain bookkeeping: a panic elsewhere cannot leave it inconsistent.
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }
}
