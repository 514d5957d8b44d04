//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1). One
//! hash takes tens of milliseconds and 19 MiB, so the server checks passwords on its own
//! small pool of low-priority threads ([`PasswordPool`]), never on the async workers, behind a
//! bounded queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use tokio::sync::oneshot;

/// The longest password Sigil hashes (DESIGN.md "Limits": a longer one is refused like a wrong
/// one, without hashing). Accounts cannot be given a longer one.
pub const MAX_PASSWORD_BYTES: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&super::random::bytes(16)).expect("16-byte salt");
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing with valid parameters")
        .to_string()
}

/// Checks `password` against a stored PHC string; a malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks `password` against `phc` like [`verify`], computing in `memory`, which the calling
/// thread keeps between checks: argon2's 19 MiB are then not mapped and faulted in afresh for
/// every check (that cost a third of a sign-in's CPU). Resized when a hash has other
/// parameters; a malformed hash never matches.
pub fn verify_in(password: &str, phc: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.len() != blocks {
        *memory = vec![argon2::Block::default(); blocks];
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok()
        && bool::from(out.ct_eq(expected.as_bytes()))
}

/// Which queue a check waits in. Checks from a browser that signed in to the account before
/// (a valid device cookie) are served first, so a returning user signs in during a flood of
/// unknown browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Priority,
    Normal,
}

/// The check was not queued: the pool is full (or this client address holds its share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// The bounds of one lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneBounds {
    /// Checks queued or running at once.
    pub pending: usize,
    /// Of those, the most one client address may hold (a quarter).
    pub per_address: usize,
}

impl LaneBounds {
    fn new(pending: usize) -> Self {
        let pending = pending.max(1);
        Self {
            pending,
            per_address: (pending / 4).max(1),
        }
    }
}

/// The bounds of the pool, fixed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub threads: usize,
    /// `login.max_pending`.
    pub normal: LaneBounds,
    /// A quarter of that again, for browsers that signed in to the account before.
    pub priority: LaneBounds,
}

impl Bounds {
    pub fn new(threads: usize, max_pending: usize) -> Self {
        Self {
            threads: threads.max(1),
            normal: LaneBounds::new(max_pending),
            priority: LaneBounds::new(max_pending / 4),
        }
    }

    fn of(&self, lane: Lane) -> LaneBounds {
        match lane {
            Lane::Priority => self.priority,
            Lane::Normal => self.normal,
        }
    }
}

/// What the pool is doing, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued_priority: usize,
    pub queued_normal: usize,
    pub running: usize,
    /// Queued checks whose client has gone away (dropped unhashed when their turn comes).
    pub abandoned: usize,
    /// Hashes computed (dummy hashes for unknown users included).
    pub hashed: u64,
    /// Checks refused because the pool was full (answered 503).
    pub rejected: u64,
    /// Checks dropped unhashed because their client had gone away.
    pub dropped: u64,
}

struct Job {
    password: String,
    /// `None`: an unknown user, checked against the dummy hash.
    phc: Option<String>,
    lane: Lane,
    address: String,
    done: Reply,
}

/// What a job computes, and where its answer goes.
enum Reply {
    /// Whether the password matches `phc`.
    Matches(oneshot::Sender<bool>),
    /// A new PHC string for the password (`phc` unused).
    Hash(oneshot::Sender<String>),
}

impl Reply {
    /// The caller stopped waiting.
    fn is_closed(&self) -> bool {
        match self {
            Reply::Matches(done) => done.is_closed(),
            Reply::Hash(done) => done.is_closed(),
        }
    }
}

/// A computed answer, sent once the pool's books are straight.
enum Answer {
    Matches(bool),
    Hash(String),
}

/// One lane's waiting checks and what it holds.
#[derive(Default)]
struct LaneQueue {
    waiting: VecDeque<Job>,
    /// Queued or running.
    pending: usize,
    /// Queued or running per client address (no entry at zero).
    per_address: HashMap<String, usize>,
}

impl LaneQueue {
    fn fits(&self, address: &str, bounds: LaneBounds) -> bool {
        self.pending < bounds.pending
            && self.per_address.get(address).copied().unwrap_or(0) < bounds.per_address
    }

    fn hold(&mut self, job: Job) {
        self.pending += 1;
        *self.per_address.entry(job.address.clone()).or_default() += 1;
        self.waiting.push_back(job);
    }

    /// A job left the pool (answered, dropped or evicted).
    fn forget(&mut self, address: &str) {
        self.pending -= 1;
        if let Some(n) = self.per_address.get_mut(address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(address);
            }
        }
    }

    /// Removes the queued jobs whose client has gone away; returns how many.
    fn evict_abandoned(&mut self) -> usize {
        let mut gone = Vec::new();
        self.waiting.retain(|job| {
            let closed = job.done.is_closed();
            if closed {
                gone.push(job.address.clone());
            }
            !closed
        });
        for address in &gone {
            self.forget(address);
        }
        gone.len()
    }
}

#[derive(Default)]
struct Queue {
    priority: LaneQueue,
    normal: LaneQueue,
    running: usize,
    /// Threads take no job while positive (see [`PasswordPool::pause`]).
    paused: usize,
    closed: bool,
}

impl Queue {
    fn lane(&mut self, lane: Lane) -> &mut LaneQueue {
        match lane {
            Lane::Priority => &mut self.priority,
            Lane::Normal => &mut self.normal,
        }
    }
}

struct Shared {
    bounds: Bounds,
    queue: Mutex<Queue>,
    ready: Condvar,
    hashed: AtomicU64,
    rejected: AtomicU64,
    dropped: AtomicU64,
    /// A hash of a random password, verified when the username is unknown so that the answer
    /// and its timing match a wrong password. Made on first use, on the pool.
    dummy: OnceLock<String>,
}

/// How long a password thread keeps argon2's memory without a check to run.
const IDLE: std::time::Duration = std::time::Duration::from_secs(10);

enum Next {
    Job(Job),
    Idle,
    Closed,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next job to run, priority lane first; `Idle` after `IDLE` without one (the thread
    /// then lets its memory go); `Closed` once the pool is closed.
    fn next(&self) -> Next {
        let mut queue = self.lock();
        loop {
            if queue.closed {
                return Next::Closed;
            }
            if queue.paused == 0 {
                if let Some(job) = queue
                    .priority
                    .waiting
                    .pop_front()
                    .or_else(|| queue.normal.waiting.pop_front())
                {
                    queue.running += 1;
                    return Next::Job(job);
                }
            }
            let (guard, waited) = self
                .ready
                .wait_timeout(queue, IDLE)
                .unwrap_or_else(|p| p.into_inner());
            queue = guard;
            if waited.timed_out() {
                return Next::Idle;
            }
        }
    }

    fn run(&self, job: Job, memory: &mut Vec<argon2::Block>) {
        // The waiting request was dropped (its client went away): nobody will read the answer.
        let answer = if job.done.is_closed() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            None
        } else {
            let answer = match &job.done {
                Reply::Hash(_) => Answer::Hash(hash(&job.password)),
                Reply::Matches(_) => {
                    // A user without a password yet (`admin::users::NO_PASSWORD`) is checked
                    // like an unknown one: same cost, same answer, nothing learnt.
                    let phc = match &job.phc {
                        Some(phc) if !phc.is_empty() => phc.as_str(),
                        _ => self
                            .dummy
                            .get_or_init(|| hash(&super::random::secret_256())),
                    };
                    Answer::Matches(verify_in(&job.password, phc, memory))
                }
            };
            self.hashed.fetch_add(1, Ordering::Relaxed);
            Some(answer)
        };
        // The books first, so that whoever reads the answer sees the pool without this job.
        {
            let mut queue = self.lock();
            queue.running -= 1;
            queue.lane(job.lane).forget(&job.address);
        }
        match (answer, job.done) {
            (Some(Answer::Matches(matches)), Reply::Matches(done)) => {
                let _ = done.send(matches);
            }
            (Some(Answer::Hash(phc)), Reply::Hash(done)) => {
                let _ = done.send(phc);
            }
            _ => {}
        }
    }
}

/// Threads that check passwords at the lowest CPU priority (SCHED_IDLE), so that a burst of
/// sign-ins never takes the CPU from request handling, and at most one hash per thread is in
/// memory at a time. At most `login.max_pending` checks wait or run in the normal lane, and a
/// quarter of that in the priority lane, each lane giving one client address at most a quarter
/// of its places; beyond them a check is refused at once ([`Busy`]). A check whose caller stopped waiting is
/// dropped unhashed.
#[derive(Clone)]
pub struct PasswordPool {
    shared: Arc<Shared>,
    /// Closes the pool (its threads end) when the last handle goes.
    _open: Arc<Open>,
}

struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_all();
    }
}

impl PasswordPool {
    pub fn start(threads: usize, max_pending: usize) -> Self {
        let bounds = Bounds::new(threads, max_pending);
        let shared = Arc::new(Shared {
            bounds,
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            hashed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dummy: OnceLock::new(),
        });
        for n in 0..bounds.threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("sigil-passwords-{n}"))
                .spawn(move || {
                    lower_priority();
                    // argon2's memory, kept while checks keep coming, let go when idle.
                    let mut memory = Vec::new();
                    loop {
                        match shared.next() {
                            Next::Job(job) => shared.run(job, &mut memory),
                            Next::Idle => memory = Vec::new(),
                            Next::Closed => break,
                        }
                    }
                })
                .expect("spawn a password thread");
        }
        Self {
            _open: Arc::new(Open(shared.clone())),
            shared,
        }
    }

    pub fn bounds(&self) -> Bounds {
        self.shared.bounds
    }

    /// Checks `password` against `phc`, or against the dummy hash when there is no user, in
    /// `lane`, for the client at `address` (its throttle bucket). `Err(Busy)` at once when the
    /// lane is full or the address holds its share. Dropping the returned future before it
    /// ends withdraws the check: it is not hashed.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
        lane: Lane,
        address: &str,
    ) -> Result<bool, Busy> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            password,
            phc,
            lane,
            address: address.to_string(),
            done: Reply::Matches(done),
        };
        self.admit(job)?;
        // A closed pool (shutting down) answers nothing: no match.
        Ok(answer.await.unwrap_or(false))
    }

    /// Hashes a new password (a user changing theirs) on the pool, under the same bounds as a
    /// check. `Ok(None)` when the pool closed before it ran; dropping the future withdraws it.
    pub async fn hash(
        &self,
        password: String,
        lane: Lane,
        address: &str,
    ) -> Result<Option<String>, Busy> {
        let (done, answer) = oneshot::channel();
        let job = Job {
            password,
            phc: None,
            lane,
            address: address.to_string(),
            done: Reply::Hash(done),
        };
        self.admit(job)?;
        Ok(answer.await.ok())
    }

    fn admit(&self, job: Job) -> Result<(), Busy> {
        let shared = &self.shared;
        let bounds = shared.bounds.of(job.lane);
        let mut queue = shared.lock();
        let lane = queue.lane(job.lane);
        if !lane.fits(&job.address, bounds) {
            // Checks whose clients left still hold their places: free them before refusing.
            let evicted = lane.evict_abandoned();
            shared.dropped.fetch_add(evicted as u64, Ordering::Relaxed);
        }
        if !lane.fits(&job.address, bounds) || queue.closed {
            shared.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Busy);
        }
        queue.lane(job.lane).hold(job);
        drop(queue);
        shared.ready.notify_one();
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        let shared = &self.shared;
        let queue = shared.lock();
        let (priority, normal) = (&queue.priority.waiting, &queue.normal.waiting);
        Stats {
            queued_priority: priority.len(),
            queued_normal: normal.len(),
            running: queue.running,
            abandoned: priority
                .iter()
                .chain(normal)
                .filter(|job| job.done.is_closed())
                .count(),
            hashed: shared.hashed.load(Ordering::Relaxed),
            rejected: shared.rejected.load(Ordering::Relaxed),
            dropped: shared.dropped.load(Ordering::Relaxed),
        }
    }

    /// Holds every thread back from starting a check until the guard is dropped (checks still
    /// queue, up to the bounds). Tests use it to line a burst up deterministically before any
    /// of it is hashed.
    pub fn pause(&self) -> Paused {
        self.shared.lock().paused += 1;
        Paused(self.shared.clone())
    }
}

/// See [`PasswordPool::pause`].
pub struct Paused(Arc<Shared>);

impl Drop for Paused {
    fn drop(&mut self) {
        self.0.lock().paused -= 1;
        self.0.ready.notify_all();
    }
}

/// Puts the calling thread (Linux schedules threads one by one) in the SCHED_IDLE class: it
/// runs whenever a core has nothing else to do, and yields at once to request handling.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler reads the param struct we pass; lowering our own priority
    // needs no privilege, and a failure leaves the thread at its normal priority.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let phc = hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse", &phc));
        assert!(!verify("wrong", &phc));
        assert!(!verify("correct horse", "not a hash"));
    }

    #[test]
    fn verifying_in_kept_memory_agrees_with_verify() {
        let phc = hash("correct horse");
        let mut memory = Vec::new();
        for _ in 0..2 {
            assert!(verify_in("correct horse", &phc, &mut memory));
            assert!(!verify_in("correct horsf", &phc, &mut memory));
        }
        assert_eq!(memory.len(), 19 * 1024, "kept for the next check");
        // Other parameters (an imported hash): the memory follows them.
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        assert!(verify_in("pw", &small, &mut memory));
        assert_eq!(memory.len(), 64);
        assert!(verify_in("correct horse", &phc, &mut memory));
        for bad in [
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA",
        ] {
            assert!(!verify_in("pw", bad, &mut memory), "{bad}");
        }
    }

    /// Queues `n` checks from `address` in `lane` without awaiting them; the receivers are
    /// returned so that the checks stay wanted.
    fn queue(
        pool: &PasswordPool,
        n: usize,
        lane: Lane,
        address: &str,
    ) -> Vec<Result<oneshot::Receiver<bool>, Busy>> {
        (0..n)
            .map(|_| {
                let (done, answer) = oneshot::channel();
                pool.admit(Job {
                    password: "pw".into(),
                    phc: Some("not a hash".into()),
                    lane,
                    address: address.into(),
                    done: Reply::Matches(done),
                })
                .map(|()| answer)
            })
            .collect()
    }

    #[test]
    fn the_queue_is_bounded_per_lane_and_per_address() {
        let pool = PasswordPool::start(1, 8);
        let bounds = pool.bounds();
        assert_eq!((bounds.normal.pending, bounds.normal.per_address), (8, 2));
        assert_eq!(
            (bounds.priority.pending, bounds.priority.per_address),
            (2, 1)
        );
        let _paused = pool.pause();
        // One address gets a quarter of the normal lane.
        let a = queue(&pool, 3, Lane::Normal, "a");
        assert_eq!(a.iter().filter(|r| r.is_ok()).count(), 2);
        // Many addresses fill it up to the bound.
        let many: Vec<_> = (0..10)
            .flat_map(|i| queue(&pool, 1, Lane::Normal, &format!("b{i}")))
            .collect();
        assert_eq!(many.iter().filter(|r| r.is_ok()).count(), 6);
        // The priority lane has its own room, shared out the same way.
        let p = queue(&pool, 2, Lane::Priority, "a");
        assert_eq!(p.iter().filter(|r| r.is_ok()).count(), 1);
        let p2 = queue(&pool, 2, Lane::Priority, "b");
        assert_eq!(p2.iter().filter(|r| r.is_ok()).count(), 1);
        let stats = pool.stats();
        assert_eq!((stats.queued_normal, stats.queued_priority), (8, 2));
        assert_eq!(stats.rejected, 1 + 4 + 1 + 1);
        assert_eq!(stats.hashed, 0, "paused");
    }

    #[test]
    fn abandoned_checks_are_dropped_unhashed_and_free_their_places() {
        let pool = PasswordPool::start(1, 4);
        let paused = pool.pause();
        let first = queue(&pool, 1, Lane::Normal, "a");
        let rest: Vec<_> = (0..3)
            .flat_map(|i| queue(&pool, 1, Lane::Normal, &format!("b{i}")))
            .collect();
        assert!(queue(&pool, 1, Lane::Normal, "c")[0].is_err(), "full");
        // The first client goes away: its place is given to the next one.
        drop(first);
        assert_eq!(pool.stats().abandoned, 1);
        let next = queue(&pool, 1, Lane::Normal, "c");
        assert!(next[0].is_ok());
        assert_eq!(pool.stats().dropped, 1);
        // The others go away too while still queued: none is hashed.
        drop(rest);
        drop(paused);
        let answer = next.into_iter().next().unwrap().unwrap();
        assert!(
            !answer.blocking_recv().unwrap(),
            "a malformed hash never matches"
        );
        let stats = pool.stats();
        assert_eq!(stats.hashed, 1);
        assert_eq!(stats.dropped, 4);
        assert_eq!((stats.queued_normal, stats.running), (0, 0));
    }

    #[test]
    fn the_priority_lane_is_served_first() {
        let pool = PasswordPool::start(1, 8);
        let phc = hash("right");
        let paused = pool.pause();
        let check = |lane, address: &str| {
            let (done, answer) = oneshot::channel();
            pool.admit(Job {
                password: "right".into(),
                phc: Some(phc.clone()),
                lane,
                address: address.into(),
                done: Reply::Matches(done),
            })
            .unwrap();
            answer
        };
        let normal = check(Lane::Normal, "a");
        let mut first = check(Lane::Priority, "a");
        let mut second = check(Lane::Priority, "b");
        drop(paused);
        // One thread: both priority checks were answered before the normal one began.
        assert!(normal.blocking_recv().unwrap());
        assert_eq!(first.try_recv(), Ok(true));
        assert_eq!(second.try_recv(), Ok(true));
    }
}
