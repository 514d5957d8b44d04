//! The audit log (DESIGN.md "Admin console and audit"): every change by the admin API or the
//! CLI, every sign-in, failure, lockout and unlock, second-factor and consent changes, token
//! replays and key rotations are events stored in `audit_events` (`storage::audit`), written on
//! the connection — and in the transaction — of the change itself. Each stored event is also
//! one `tracing` line (target `audit`), for operators who read the logs.
//!
//! Details never hold a secret: no password, code, token, client secret or key material; a
//! browser's device key is named by its kind only.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use crate::storage::audit::{self as stored, NewEvent};
use crate::storage::users::UserRow;
use crate::storage::{AnyConnection, StorageError};

macro_rules! event_types {
    ($($variant:ident => $name:literal,)+) => {
        /// Every kind of event, by its stored dotted name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)+
                }
            }
        }
    };
}

event_types! {
    UserCreated => "user.created",
    UserRemoved => "user.removed",
    UserPasswordChanged => "user.password_changed",
    UserDisabled => "user.disabled",
    UserEnabled => "user.enabled",
    UserLoggedOutEverywhere => "user.logged_out_everywhere",
    UserUnlocked => "user.unlocked",
    UserUpdated => "user.updated",
    UserFactorsReset => "user.factors_reset",
    UserPasswordLinkIssued => "user.password_link_issued",
    UserPasswordSet => "user.password_set",
    SigninSucceeded => "signin.succeeded",
    SigninFailed => "signin.failed",
    SigninLocked => "signin.locked",
    SigninSteppedUp => "signin.stepped_up",
    FactorTotpStarted => "factor.totp_started",
    FactorTotpAdded => "factor.totp_added",
    FactorTotpRemoved => "factor.totp_removed",
    FactorRecoveryCodesIssued => "factor.recovery_codes_issued",
    FactorPasskeyAdded => "factor.passkey_added",
    FactorPasskeyRemoved => "factor.passkey_removed",
    AccountSignedIn => "account.signed_in",
    AccountPasswordChanged => "account.password_changed",
    AccountPasswordChangeRefused => "account.password_change_refused",
    AccountSessionEnded => "account.session_ended",
    AccountOtherSessionsEnded => "account.other_sessions_ended",
    AccountReauthenticationRequired => "account.reauthentication_required",
    ConsoleSignedIn => "console.signed_in",
    ConsoleReauthenticationRequired => "console.reauthentication_required",
    ConsentGiven => "consent.given",
    ConsentWithdrawn => "consent.withdrawn",
    TokenReplayDetected => "token.replay_detected",
    ClientAdded => "client.added",
    ClientRemoved => "client.removed",
    ClientUpdated => "client.updated",
    ClientSecretRotated => "client.secret_rotated",
    ClientInitialTokenIssued => "client.initial_token_issued",
    DataImported => "data.imported",
    ResourceAdded => "resource.added",
    ResourceRemoved => "resource.removed",
    ResourceUpdated => "resource.updated",
    GroupAdded => "group.added",
    GroupRemoved => "group.removed",
    GroupRenamed => "group.renamed",
    GroupMemberAdded => "group.member_added",
    GroupMemberRemoved => "group.member_removed",
    SessionEnded => "session.ended",
    KeysRotated => "keys.rotated",
    KeysRetired => "keys.retired",
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown event type {s:?}; the types are: {}",
                    names.join(", ")
                )
            })
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A user (signed in, or signing in as this account).
    User { id: String, username: String },
    /// An OAuth client: the admin API's caller, or the client that presented a replayed token.
    Client(String),
    /// The `sigil` command line.
    Cli,
    /// Sigil itself on its schedule (key rotation).
    Scheduler,
    /// Someone not known: a sign-in attempt under a name that is no user.
    Anonymous,
    /// Dynamic client registration (RFC 7591 / RFC 7592): a client registering or managing
    /// itself at `/register`.
    Registration,
}

impl Actor {
    pub fn user(row: &UserRow) -> Self {
        Self::User {
            id: row.id.clone(),
            username: row.username.clone(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::User { .. } => "user",
            Self::Client(_) => "client",
            Self::Cli => "cli",
            Self::Scheduler => "scheduler",
            Self::Anonymous => "anonymous",
            Self::Registration => "registration",
        }
    }

    /// The stored actor: the user's or client's id, or the kind itself.
    pub fn id(&self) -> &str {
        match self {
            Self::User { id, .. } => id,
            Self::Client(id) => id,
            other => other.kind(),
        }
    }

    /// The username, shown beside a user's id.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::User { username, .. } => Some(username),
            _ => None,
        }
    }
}

/// Who makes a change, and from where: what every event of theirs starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct By {
    pub actor: Actor,
    pub address: Option<String>,
}

impl By {
    /// The `sigil` command line (no client address).
    pub fn cli() -> Self {
        Self {
            actor: Actor::Cli,
            address: None,
        }
    }

    /// Sigil's own schedule.
    pub fn scheduler() -> Self {
        Self {
            actor: Actor::Scheduler,
            address: None,
        }
    }

    /// A client registering or managing itself at `/register`, from `address`.
    pub fn registration(address: impl ToString) -> Self {
        Self {
            actor: Actor::Registration,
            address: Some(address.to_string()),
        }
    }

    /// An OAuth client calling from `address` (the admin API).
    pub fn client(client_id: &str, address: impl ToString) -> Self {
        Self {
            actor: Actor::Client(client_id.to_string()),
            address: Some(address.to_string()),
        }
    }

    /// A successful `kind` by this actor, from this address.
    pub fn event(&self, kind: EventType) -> Event {
        let mut event = Event::new(kind, self.actor.clone());
        event.address = self.address.clone();
        event
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// One event, built up and then [`Event::record`]ed.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    pub actor: Actor,
    pub address: Option<String>,
    pub target: Option<String>,
    pub outcome: Outcome,
    pub details: Value,
}

impl Event {
    /// A successful `kind` by `actor`, without target, address or details yet.
    pub fn new(kind: EventType, actor: Actor) -> Self {
        Self {
            kind,
            actor,
            address: None,
            target: None,
            outcome: Outcome::Success,
            details: json!({}),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// The client address the request came from (after trusted proxies).
    pub fn from(mut self, address: impl ToString) -> Self {
        self.address = Some(address.to_string());
        self
    }

    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }

    /// A JSON object of facts about the event; never a secret.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The row as stored at `now`.
    pub fn to_row(&self, now: i64) -> NewEvent {
        NewEvent {
            time: now,
            actor_kind: self.actor.kind().into(),
            actor: self.actor.id().into(),
            actor_name: self.actor.name().map(str::to_string),
            client_address: self.address.clone(),
            event_type: self.kind.as_str().into(),
            target: self.target.clone(),
            outcome: self.outcome.as_str().into(),
            details: self.details.to_string(),
        }
    }

    /// Stores the event on `conn` (one INSERT, in the caller's transaction) and logs it. Never
    /// inlined: `bench/factors-callgrind.sh` reads a sign-in's audit cost off this symbol.
    #[inline(never)]
    pub fn record(&self, conn: &mut AnyConnection, now: i64) -> Result<(), StorageError> {
        stored::record(conn, &self.to_row(now))?;
        self.log();
        Ok(())
    }

    /// Stores a failed sign-in (`sign_in_failure`) when it names an account or locked a key;
    /// a failure for a name that is no one's only goes to the log. Those come from anyone on the
    /// internet, from as many addresses as an attacker has: stored, they would grow the table
    /// without bound for the retention period. Failures against accounts are bounded by each
    /// account's lockout, lockouts by each address's.
    pub fn record_failure(&self, conn: &mut AnyConnection, now: i64) -> Result<(), StorageError> {
        if self.actor == Actor::Anonymous && self.kind == EventType::SigninFailed {
            self.log();
            return Ok(());
        }
        self.record(conn, now)
    }

    /// The `tracing` line of the event (target `audit`).
    pub fn log(&self) {
        let user = match &self.actor {
            Actor::User { id, .. } => Some(id.as_str()),
            _ => None,
        };
        tracing::info!(
            target: "audit",
            event = self.kind.as_str(),
            actor_kind = self.actor.kind(),
            actor = self.actor.name().unwrap_or(self.actor.id()),
            user,
            client_address = self.address.as_deref(),
            subject = self.target.as_deref(),
            outcome = self.outcome.as_str(),
            details = %self.details,
        );
    }
}

/// A failed sign-in check (wrong password, code or passkey; unknown user; disabled account):
/// `signin.locked` when this failure locked a key (`locked`, the throttle keys it locked),
/// else `signin.failed`. The actor is the account when the name is a user's; the target is the
/// name given. Locked keys are named by their kind (`account`, `address`, `device`), never by a
/// browser's device hash.
pub fn sign_in_failure(
    user: Option<&UserRow>,
    name: Option<&str>,
    address: &str,
    method: &str,
    locked: &[String],
) -> Event {
    let actor = user.map_or(Actor::Anonymous, Actor::user);
    let kind = if locked.is_empty() {
        EventType::SigninFailed
    } else {
        EventType::SigninLocked
    };
    let kinds: Vec<&str> = locked
        .iter()
        .map(|key| match key.split_once(':').map(|(k, _)| k) {
            Some("user") => "account",
            Some("ip") => "address",
            Some("device") => "device",
            _ => "other",
        })
        .collect();
    let mut details = json!({ "method": method });
    if !kinds.is_empty() {
        details["locked"] = json!(kinds);
    }
    let mut event = Event::new(kind, actor)
        .from(address)
        .failed()
        .details(details);
    if let Some(name) = user.map(|u| u.username.as_str()).or(name) {
        event = event.target(name);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_type_has_a_distinct_dotted_name_that_parses_back() {
        let mut seen = std::collections::BTreeSet::new();
        for t in EventType::ALL {
            assert!(t.as_str().contains('.'), "{t}");
            assert!(seen.insert(t.as_str()), "{t} twice");
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), *t);
        }
        assert!("user.nothing".parse::<EventType>().is_err());
    }

    #[test]
    fn a_locking_failure_names_the_kinds_of_keys_not_the_device_hash() {
        let e = sign_in_failure(
            None,
            Some("mallory"),
            "192.0.2.1",
            "password",
            &["user:mallory".into(), "device:SECRETHASH".into()],
        );
        assert_eq!(e.kind, EventType::SigninLocked);
        assert_eq!(e.actor, Actor::Anonymous);
        let row = e.to_row(5);
        assert!(!row.details.contains("SECRETHASH"), "{}", row.details);
        assert_eq!(row.outcome, "failure");
        assert_eq!(row.target.as_deref(), Some("mallory"));
    }
}
