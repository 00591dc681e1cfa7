//! What the sign-in page remembers, all in memory and all bounded: sign-in attempts (one per
//! approval request), sessions, the per-username budget of approval requests, and the
//! browser binding that CSRF tokens and attempts hang on, and the wrong-password counts per
//! username and per client network (M7).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use hmac::Mac as _;

/// Most attempts kept at once (each is one approval request, alive ≤ 2 minutes).
pub const MAX_ATTEMPTS: usize = 10_000;
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 100_000;
/// Most request budgets (usernames and client addresses) tracked at once.
pub const MAX_BUDGETS: usize = 100_000;
/// Wrong passwords per username (known or not, alike): 10 free, then a lockout from 30 s
/// doubling to 15 min; one is forgiven per 10 quiet minutes. Enough for a person who forgot
/// which password, far too few for guessing — and a stranger locks alice out for minutes only.
pub const PASSWORD_LIMIT_PER_USER: approvd_client::home::CodeLimit =
    approvd_client::home::CodeLimit {
        free: 10,
        first_lockout: 30,
        max_lockout: 15 * 60,
        decay: 600,
    };
/// Wrong passwords per client network (an IPv4 address, an IPv6 /64), any usernames: one
/// client spraying many names is slowed as well.
pub const PASSWORD_LIMIT_PER_ADDRESS: approvd_client::home::CodeLimit =
    approvd_client::home::CodeLimit {
        free: 30,
        first_lockout: 30,
        max_lockout: 60 * 60,
        decay: 120,
    };
/// A signed-in session lasts this long, seconds.
pub const SESSION_SECS: u64 = 12 * 3600;
/// Status polls of one attempt held open at once; more are answered at once (a page needs
/// one; a client opening thousands must not hold the page's connections for free).
pub const MAX_HELD_POLLS: usize = 2;
/// Status polls held open at once from one client network (its address; IPv6 its /64), over
/// all its attempts: what one client can hold of the page's connections (M6). Beyond it its
/// polls are answered at once, as every other request is (the rest of the page answers in
/// milliseconds; a request head must arrive within 10 s, and idle connections close after 5 s).
pub const MAX_HELD_POLLS_PER_NETWORK: usize = 16;
/// Send times kept to draw a decoy's delay from (the recent ones: the relay's latency drifts).
pub const SEND_SAMPLES: usize = 64;

/// Approval requests per username per window: a stranger typing alice's name cannot flood
/// her phone (known and unknown names share the budget, so it reveals nothing either).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub requests: u32,
    /// Approval requests one client address may cause per window (any usernames): bounds how
    /// much of the page's memory one client can hold.
    pub per_address: u32,
    pub window_secs: u64,
}

/// Whose budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spent {
    User,
    Address,
}

/// How the person proved the first factor, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Username and password were right; the phone is the second factor.
    TwoStep,
    /// Username only; the phone (with number matching) is the only factor.
    Passwordless,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Waiting for the phone.
    Waiting,
    /// The agent verified the phone's approval: the next `finish` signs in.
    Approved,
    /// Ended without signing in (the agent's status, e.g. `denied`).
    Ended(&'static str),
    /// The agent could not reach the relay: only a code can sign in.
    Unreachable,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub user: String,
    pub mode: Mode,
    /// The browser that started it (only it may see or finish the attempt).
    pub browser: String,
    /// The agent's request id; `None` for a decoy (an account without phones: the page looks
    /// the same and simply expires, so a stranger learns nothing).
    pub request_id: Option<approvd_proto::Cid>,
    pub number: String,
    /// Names of the phones it was sent to (only shown after a password).
    pub phones: Vec<String>,
    pub expires: u64,
    pub progress: Progress,
}

#[derive(Debug)]
pub struct State {
    key: [u8; 32],
    budget: Budget,
    attempts: Mutex<HashMap<String, Attempt>>,
    sessions: Mutex<HashMap<String, (String, u64)>>,
    requests: Mutex<HashMap<String, (u64, u32)>>,
    /// How long the last [`SEND_SAMPLES`] requests that reached the agent and the relay took
    /// to send: a decoy waits as long as one of them, drawn at random (M2).
    send_times: Mutex<std::collections::VecDeque<std::time::Duration>>,
    /// Status polls held open now, by `attempt <id>` and by `network <network>`.
    held: Mutex<HashMap<String, usize>>,
    /// Wrong passwords, by `user <name>` and `address <network>` (at most [`MAX_BUDGETS`]).
    guesses: Mutex<HashMap<String, approvd_client::home::Attempts>>,
}

/// Why a password is not checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Too many wrong passwords for this username, until then.
    User(u64),
    /// Too many wrong passwords from this client's network, until then.
    Address(u64),
}

/// The key of a client's budgets: the address, or for IPv6 its /64 (one subscriber usually
/// holds a whole /64, so per-address budgets would be no limit at all).
pub fn network_of(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let segments = v6.segments();
                format!(
                    "{:x}:{:x}:{:x}:{:x}::/64",
                    segments[0], segments[1], segments[2], segments[3]
                )
            }
        },
    }
}

/// A held status poll of one attempt from one network, counted for both until dropped (also
/// when the client goes away).
#[derive(Debug)]
pub struct HeldPoll<'a> {
    state: &'a State,
    keys: [String; 2],
}

impl Drop for HeldPoll<'_> {
    fn drop(&mut self) {
        let mut held = lock(&self.state.held);
        for key in &self.keys {
            if let Some(count) = held.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    held.remove(key);
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// 256 random bits, base64url: ids of browsers, attempts and sessions.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Shape check of an id from a cookie or a URL.
pub fn is_id(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

impl State {
    pub fn new(budget: Budget) -> Self {
        Self {
            key: rand::random(),
            budget,
            attempts: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            requests: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            send_times: Mutex::new(std::collections::VecDeque::new()),
            guesses: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a password for `user` from `address` may be checked now (an unknown username
    /// is counted exactly like a known one).
    pub fn may_guess(&self, user: &str, address: Option<std::net::IpAddr>) -> Result<(), Locked> {
        let now = now();
        let mut guesses = lock(&self.guesses);
        if let Some(address) = address {
            if let Some(attempts) = guesses.get_mut(&format!("address {}", network_of(address))) {
                attempts
                    .admit(&PASSWORD_LIMIT_PER_ADDRESS, now)
                    .map_err(Locked::Address)?;
            }
        }
        if let Some(attempts) = guesses.get_mut(&format!("user {}", user.to_lowercase())) {
            attempts
                .admit(&PASSWORD_LIMIT_PER_USER, now)
                .map_err(Locked::User)?;
        }
        Ok(())
    }

    /// Count a wrong password for `user` from `address`.
    pub fn wrong_password(&self, user: &str, address: Option<std::net::IpAddr>) {
        let now = now();
        let mut guesses = lock(&self.guesses);
        if guesses.len() + 2 > MAX_BUDGETS {
            guesses.retain(|key, attempts| {
                let limit = if key.starts_with("user ") {
                    PASSWORD_LIMIT_PER_USER
                } else {
                    PASSWORD_LIMIT_PER_ADDRESS
                };
                !attempts.is_spent(&limit, now)
            });
            if guesses.len() + 2 > MAX_BUDGETS {
                return;
            }
        }
        if let Some(address) = address {
            guesses
                .entry(format!("address {}", network_of(address)))
                .or_default()
                .fail(&PASSWORD_LIMIT_PER_ADDRESS, now);
        }
        guesses
            .entry(format!("user {}", user.to_lowercase()))
            .or_default()
            .fail(&PASSWORD_LIMIT_PER_USER, now);
    }

    /// A right password for `user`: its count starts over (the address's does not).
    pub fn right_password(&self, user: &str) {
        lock(&self.guesses).remove(&format!("user {}", user.to_lowercase()));
    }

    /// The CSRF token of a browser: a MAC of its id (synchronizer token without storage).
    pub fn csrf_token(&self, browser: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        mac.update(b"approvd-signin-web csrf\0");
        mac.update(browser.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn csrf_ok(&self, browser: &str, token: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        bool::from(self.csrf_token(browser).as_bytes().ct_eq(token.as_bytes()))
    }

    /// Charge one approval request to the client address's budget, then to `user`'s (each
    /// only if the one before allowed it).
    pub fn charge(&self, user: &str, address: Option<std::net::IpAddr>) -> Result<(), Spent> {
        let now = now();
        let window = self.budget.window_secs;
        let mut requests = lock(&self.requests);
        if requests.len() >= MAX_BUDGETS {
            requests.retain(|_, (start, _)| now < start.saturating_add(window));
            if requests.len() >= MAX_BUDGETS {
                return Err(Spent::Address);
            }
        }
        let mut spend = |key: String, limit: u32| {
            let entry = requests.entry(key).or_insert((now, 0));
            if now >= entry.0.saturating_add(window) {
                *entry = (now, 0);
            }
            let allowed = entry.1 < limit;
            if allowed {
                entry.1 += 1;
            }
            allowed
        };
        if let Some(address) = address {
            if !spend(
                format!("address {}", network_of(address)),
                self.budget.per_address,
            ) {
                return Err(Spent::Address);
            }
        }
        if !spend(
            format!("user {}", user.to_lowercase()),
            self.budget.requests,
        ) {
            return Err(Spent::User);
        }
        Ok(())
    }

    /// Keep a new attempt; its id, or `None` when the page holds too many already.
    pub fn add_attempt(&self, attempt: Attempt) -> Option<String> {
        let now = now();
        let mut attempts = lock(&self.attempts);
        if attempts.len() >= MAX_ATTEMPTS {
            // Finished or expired attempts are kept a minute for their last page view.
            attempts.retain(|_, attempt| attempt.expires.saturating_add(60) > now);
            if attempts.len() >= MAX_ATTEMPTS {
                return None;
            }
        }
        let id = random_id();
        attempts.insert(id.clone(), attempt);
        Some(id)
    }

    /// The attempt `id`, if `browser` started it.
    pub fn attempt(&self, id: &str, browser: &str) -> Option<Attempt> {
        lock(&self.attempts)
            .get(id)
            .filter(|attempt| attempt.browser == browser)
            .cloned()
    }

    /// Record progress, unless the attempt already ended (an approval never turns back into
    /// waiting, a cancel never overrides an approval).
    pub fn set_progress(&self, id: &str, progress: Progress) {
        if let Some(attempt) = lock(&self.attempts).get_mut(id) {
            if matches!(attempt.progress, Progress::Waiting | Progress::Unreachable) {
                attempt.progress = progress;
            }
        }
    }

    /// Count one more held status poll of attempt `id` from `network`, unless
    /// [`MAX_HELD_POLLS`] are held for the attempt or [`MAX_HELD_POLLS_PER_NETWORK`] for the
    /// network.
    pub fn hold_poll(&self, id: &str, network: &str) -> Option<HeldPoll<'_>> {
        let keys = [format!("attempt {id}"), format!("network {network}")];
        let mut held = lock(&self.held);
        let full = |key: &String, max: usize| held.get(key).is_some_and(|count| *count >= max);
        if full(&keys[0], MAX_HELD_POLLS) || full(&keys[1], MAX_HELD_POLLS_PER_NETWORK) {
            return None;
        }
        for key in &keys {
            *held.entry(key.clone()).or_default() += 1;
        }
        Some(HeldPoll { state: self, keys })
    }

    /// Note how long a real request took to send (the agent's answer to `POST /v1/requests`).
    pub fn note_send(&self, took: std::time::Duration) {
        let mut times = lock(&self.send_times);
        if times.len() >= SEND_SAMPLES {
            times.pop_front();
        }
        times.push_back(took);
    }

    /// How long a decoy (a name with no phone) waits before it answers: one of the recent
    /// real send times, drawn at random, so that its answer time is distributed as a real
    /// one's and tells nothing about the name (M2). Before any real send: 10 to 30 ms.
    pub fn decoy_delay(&self) -> std::time::Duration {
        use rand::Rng as _;
        let times = lock(&self.send_times);
        let mut random = rand::rng();
        if times.is_empty() {
            return std::time::Duration::from_millis(random.random_range(10..30));
        }
        times[random.random_range(0..times.len())]
    }

    pub fn remove_attempt(&self, id: &str) -> Option<Attempt> {
        lock(&self.attempts).remove(id)
    }

    /// Start a session for `user`; its id (the cookie's value).
    pub fn sign_in(&self, user: &str) -> Option<String> {
        let now = now();
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, (_, expires)| *expires > now);
            if sessions.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = random_id();
        sessions.insert(id.clone(), (user.to_owned(), now + SESSION_SECS));
        Some(id)
    }

    pub fn session_user(&self, id: &str) -> Option<String> {
        lock(&self.sessions)
            .get(id)
            .filter(|(_, expires)| *expires > now())
            .map(|(user, _)| user.clone())
    }

    pub fn sign_out(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }
}
