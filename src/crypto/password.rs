//! Password hashing with argon2id at the OWASP parameters (m = 19 MiB, t = 2, p = 1). One
//! hash takes tens of milliseconds and 19 MiB, so the server checks passwords on its own
//! small pool of low-priority threads ([`PasswordPool`]), never on the async workers.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};

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

/// Threads that check passwords at the lowest CPU priority (SCHED_IDLE), so that a burst of
/// sign-ins never takes the CPU from request handling, and at most one hash per thread is in
/// memory at a time.
#[derive(Clone)]
pub struct PasswordPool {
    jobs: std::sync::mpsc::Sender<Job>,
    /// A hash of a random password, verified when the username is unknown so that the answer
    /// and its timing match a wrong password. Made on first use, on the pool.
    dummy: std::sync::Arc<std::sync::OnceLock<String>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl PasswordPool {
    pub fn start(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("sigil-passwords-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })
                .expect("spawn a password thread");
        }
        Self {
            jobs,
            dummy: Default::default(),
        }
    }

    /// Checks `password` against `phc`, or against the dummy hash when there is no user.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let (done, result) = tokio::sync::oneshot::channel();
        let dummy = self.dummy.clone();
        let job: Job = Box::new(move || {
            let phc = phc.unwrap_or_else(|| {
                dummy
                    .get_or_init(|| hash(&super::random::secret_256()))
                    .clone()
            });
            let _ = done.send(verify(&password, &phc));
        });
        if self.jobs.send(job).is_err() {
            return false;
        }
        result.await.unwrap_or(false)
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
    #[test]
    fn hashes_with_owasp_parameters_and_verifies() {
        let phc = super::hash("correct horse");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(super::verify("correct horse", &phc));
        assert!(!super::verify("wrong", &phc));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
