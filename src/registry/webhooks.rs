//! Webhooks (issue 24): a team admin registers a URL, a secret and the
//! events it wants; each event of the team is then POSTed there as JSON,
//! signed with `X-Modelreg-Signature: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! Events are recorded in the same write transaction as the change they
//! announce (`emit`): one `webhook_deliveries` row per matching webhook and
//! a job to send the webhook's deliveries, so an event is announced if and
//! only if its change committed, and a receiver that is slow or down never
//! delays the change.
//!
//! A webhook's deliveries go out one at a time, oldest first: a runner takes
//! the webhook (`take_webhook`, a lease in its row), sends what is due
//! (`next_due_delivery`, `compute::webhooks`), and lets it go
//! (`release_webhook`), which queues the next job for when the oldest
//! pending delivery is due again. So a receiver sees events in order, and a
//! dead one holds at most one runner thread for one timeout per retry, never
//! one per event. `record_attempt` keeps every attempt and decides the
//! next: retried with exponential backoff for 24 hours after the event when
//! the receiver could not take it (no answer, 408, 429 or 5xx), given up at
//! once when it refused it (another 4xx); the deliveries behind a retried
//! one wait for it.
//!
//! A delivery carries ids and names, never a secret or a key.

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::compute::jobs::enqueue_job_in;
use crate::registry::{format_time, new_id, now, Error, Principal, Registry, Result};
use crate::store::sql::{self, params, OptionalExtension};

/// The job kind that sends a webhook's due deliveries; its subject is the
/// webhook.
pub const DELIVERY_JOB: &str = "webhook.deliver";

/// How long after its event a delivery is still retried.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Everything a webhook can be told about.
pub const EVENTS: [&str; 7] = [
    "version.created",
    "version.deprecated",
    "version.deleted",
    "alias.moved",
    "model.deleted",
    "test.finished",
    "conversion.finished",
];

const MAX_WEBHOOKS_PER_TEAM: i64 = 50;
/// How many of a team's webhooks may be sent at once: fewer than the
/// deliveries lane has threads (`jobs::DELIVERY_THREADS`, 8), so that one
/// team's dead receivers leave threads for everyone else.
const MAX_SENDING_PER_TEAM: i64 = 2;
/// How soon a job refused for its team's turn asks again.
const TEAM_BUSY_RETRY: Duration = Duration::from_secs(1);

/// What `take_webhook` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    Taken,
    /// Another runner is sending them; it sends what this job would have (a
    /// job was queued for when its hold runs out, in case it died).
    HeldElsewhere,
    /// The team's share of the lane is in use; the job was queued again.
    TeamBusy,
    /// The webhook was deleted.
    Gone,
}

/// A webhook as listed: never its secret.
#[derive(Clone, Debug, Serialize)]
pub struct Webhook {
    pub id: String,
    pub team_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_by: String,
    pub created_at: String,
}

/// One event sent (or being sent) to one webhook, with its attempts.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub id: String,
    /// The event's id, the same for every webhook it went to: receivers
    /// deduplicate on it (`X-Modelreg-Event-Id`).
    pub event_id: String,
    pub event: String,
    /// pending, delivered or failed.
    pub state: String,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    pub at: String,
    /// The receiver's HTTP status; None when none came (refused, timed out).
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// What the sending job needs: where, what and how to sign it.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event: String,
    /// The exact body, as signed.
    pub payload: String,
    pub created_at: String,
    pub attempts: i64,
}

/// How one attempt went.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

/// `sha256=<hex>`: the HMAC-SHA256 of the body with the secret, the
/// convention of GitHub's and Hugging Face's webhooks.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", crate::registry::hex(&mac.finalize().into_bytes()))
}

fn check_url(url: &str) -> Result<()> {
    let lower = url.to_ascii_lowercase();
    let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
    let authority = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let well_formed = url.len() <= 2048
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
        && authority.is_some_and(|a| !a.is_empty() && !a.contains('@'));
    if !well_formed {
        return Err(Error::invalid("url", format!("must be an http:// or https:// URL without credentials, got {url:?}")));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid("events", format!("name at least one of {}", EVENTS.join(", "))));
    }
    if let Some(unknown) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(Error::invalid("events", format!("{unknown:?} is not an event; they are {}", EVENTS.join(", "))));
    }
    Ok(())
}

/// Only a team admin manages the team's webhooks: a webhook sees every
/// model of the team.
fn check_admin(who: &Principal) -> Result<()> {
    if !who.is_admin {
        return Err(Error::Forbidden("only a team admin's key can manage webhooks".into()));
    }
    Ok(())
}

const WEBHOOK_COLUMNS: &str = "id, team_id, url, events, created_by, created_at";

fn webhook_from_row(r: &sql::Row) -> sql::Result<Webhook> {
    Ok(Webhook {
        id: r.get(0)?,
        team_id: r.get(1)?,
        url: r.get(2)?,
        events: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
        created_by: r.get(4)?,
        created_at: r.get(5)?,
    })
}

impl Registry {
    pub fn create_webhook(&self, who: &Principal, url: &str, secret: &str, events: Vec<String>) -> Result<Webhook> {
        check_admin(who)?;
        check_url(url)?;
        if !(8..=256).contains(&secret.chars().count()) {
            return Err(Error::invalid("secret", "must be 8 to 256 characters"));
        }
        let mut events = events;
        events.sort();
        events.dedup();
        check_events(&events)?;
        let tx = self.write()?;
        let count: i64 = tx.prepare_cached("SELECT COUNT(*) FROM webhooks WHERE team_id = ?1")?.query_row([&who.team_id], |r| r.get(0))?;
        if count >= MAX_WEBHOOKS_PER_TEAM {
            return Err(Error::Conflict(format!("a team has at most {MAX_WEBHOOKS_PER_TEAM} webhooks; delete one first")));
        }
        let hook = Webhook {
            id: new_id(),
            team_id: who.team_id.clone(),
            url: url.to_string(),
            events,
            created_by: who.user_id.clone(),
            created_at: now(),
        };
        tx.execute(
            "INSERT INTO webhooks (id, team_id, url, secret, events, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![hook.id, hook.team_id, hook.url, secret, json!(hook.events).to_string(), hook.created_by, hook.created_at],
        )?;
        tx.commit()?;
        Ok(hook)
    }

    pub fn list_webhooks(&self, who: &Principal) -> Result<Vec<Webhook>> {
        check_admin(who)?;
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE team_id = ?1 ORDER BY created_at DESC, id DESC"))?
            .query_map([&who.team_id], webhook_from_row)?
            .collect::<sql::Result<_>>()?)
    }

    /// Deletes a webhook and its delivery log; deliveries not yet sent are
    /// not sent.
    pub fn delete_webhook(&self, who: &Principal, id: &str) -> Result<()> {
        check_admin(who)?;
        let tx = self.write()?;
        if tx.execute("DELETE FROM webhooks WHERE id = ?1 AND team_id = ?2", [id, &who.team_id])? == 0 {
            return Err(Error::not_found("webhook", id));
        }
        tx.commit()?;
        Ok(())
    }

    /// A webhook's newest deliveries, each with its attempts.
    pub fn webhook_deliveries(&self, who: &Principal, id: &str, limit: u64) -> Result<Vec<Delivery>> {
        check_admin(who)?;
        let found: Option<String> =
            self.conn.prepare_cached("SELECT id FROM webhooks WHERE id = ?1 AND team_id = ?2")?.query_row([id, &who.team_id], |r| r.get(0)).optional()?;
        if found.is_none() {
            return Err(Error::not_found("webhook", id));
        }
        let _snapshot = self.read_snapshot()?;
        let mut deliveries: Vec<Delivery> = self
            .conn
            .prepare_cached(
                "SELECT id, event_id, event, state, created_at, delivered_at FROM webhook_deliveries
                 WHERE webhook_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2",
            )?
            .query_map(params![id, limit.min(1000) as i64], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    event_id: r.get(1)?,
                    event: r.get(2)?,
                    state: r.get(3)?,
                    created_at: r.get(4)?,
                    delivered_at: r.get(5)?,
                    attempts: Vec::new(),
                })
            })?
            .collect::<sql::Result<_>>()?;
        let mut attempts = self.conn.prepare_cached(
            "SELECT attempt, at, status, latency_ms, error FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY attempt",
        )?;
        for delivery in &mut deliveries {
            delivery.attempts = attempts
                .query_map([&delivery.id], |r| {
                    Ok(Attempt { attempt: r.get(0)?, at: r.get(1)?, status: r.get(2)?, latency_ms: r.get(3)?, error: r.get(4)? })
                })?
                .collect::<sql::Result<_>>()?;
        }
        Ok(deliveries)
    }

    /// Takes a webhook's deliveries for `holder` until `until` (RFC 3339).
    /// Taking them again while holding them renews the hold. Refused while
    /// another runner holds them (it sends them all before it lets go), or
    /// while `MAX_SENDING_PER_TEAM` other webhooks of the team are being
    /// sent: then the job is queued again a second later, so that a team's
    /// dead receivers hold at most that many threads of the lane and other
    /// teams' deliveries go on.
    pub fn take_webhook(&self, webhook_id: &str, holder: &str, until: &str) -> Result<Take> {
        let tx = self.write()?;
        let at = now();
        let row: Option<(String, Option<String>, Option<String>)> = tx
            .prepare_cached("SELECT team_id, sending_by, sending_until FROM webhooks WHERE id = ?1")?
            .query_row([webhook_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((team_id, by, held_until)) = row else { return Ok(Take::Gone) };
        let ours = by.as_deref() == Some(holder);
        if let Some(held_until) = held_until.filter(|until| !ours && *until >= at) {
            // Its holder sends what is due and queues the rest as it lets
            // go; a job for when its hold runs out covers a holder that died.
            enqueue_delivery_job(&tx, &team_id, webhook_id, Some(held_until))?;
            tx.commit()?;
            return Ok(Take::HeldElsewhere);
        }
        if !ours {
            let sending: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM webhooks WHERE team_id = ?1 AND id <> ?2 AND sending_until >= ?3")?
                .query_row(params![team_id, webhook_id, at], |r| r.get(0))?;
            if sending >= MAX_SENDING_PER_TEAM {
                let later = format_time(time::OffsetDateTime::now_utc() + TEAM_BUSY_RETRY);
                enqueue_delivery_job(&tx, &team_id, webhook_id, Some(later))?;
                tx.commit()?;
                return Ok(Take::TeamBusy);
            }
        }
        tx.execute("UPDATE webhooks SET sending_until = ?3, sending_by = ?2 WHERE id = ?1", params![webhook_id, holder, until])?;
        tx.commit()?;
        Ok(Take::Taken)
    }

    /// The webhook's oldest pending delivery, when it is due; None when there
    /// is none, or the oldest waits for its next attempt (the ones behind it
    /// wait with it, so that the receiver sees events in order).
    pub fn next_due_delivery(&self, webhook_id: &str) -> Result<Option<DueDelivery>> {
        let oldest = self
            .conn
            .prepare_cached(
                "SELECT d.id, w.url, w.secret, d.event_id, d.event, d.payload, d.created_at,
                        (SELECT COUNT(*) FROM webhook_attempts a WHERE a.delivery_id = d.id), d.next_attempt_at
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.webhook_id = ?1 AND d.state = 'pending' ORDER BY d.created_at, d.id LIMIT 1",
            )?
            .query_row([webhook_id], |r| {
                let due = DueDelivery {
                    id: r.get(0)?,
                    url: r.get(1)?,
                    secret: r.get(2)?,
                    event_id: r.get(3)?,
                    event: r.get(4)?,
                    payload: r.get(5)?,
                    created_at: r.get(6)?,
                    attempts: r.get(7)?,
                };
                Ok((due, r.get::<_, Option<String>>(8)?))
            })
            .optional()?;
        Ok(match oldest {
            Some((_, Some(next))) if next > now() => None,
            Some((due, _)) => Some(due),
            None => None,
        })
    }

    /// Lets a webhook's deliveries go, and queues the job that sends the
    /// next one, for when it is due: in one write transaction with the check,
    /// so that an event recorded meanwhile (`emit` writes under the same
    /// lock) is never left without a job.
    pub fn release_webhook(&self, webhook_id: &str, holder: &str) -> Result<()> {
        let tx = self.write()?;
        tx.execute("UPDATE webhooks SET sending_until = NULL, sending_by = NULL WHERE id = ?1 AND sending_by = ?2", [webhook_id, holder])?;
        let next: Option<(String, Option<String>)> = tx
            .prepare_cached(
                "SELECT w.team_id, d.next_attempt_at FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.webhook_id = ?1 AND d.state = 'pending' ORDER BY d.created_at, d.id LIMIT 1",
            )?
            .query_row([webhook_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((team_id, at)) = next {
            enqueue_delivery_job(&tx, &team_id, webhook_id, at)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records an attempt and decides what follows: delivered on a 2xx;
    /// tried again after `first_retry`, doubling each time (at most an hour
    /// apart), while the event is less than `RETRY_FOR` old and the receiver
    /// could not take it; else failed. Answers the attempt's summary.
    pub fn record_attempt(&self, due: &DueDelivery, outcome: &AttemptOutcome, first_retry: Duration) -> Result<Value> {
        let tx = self.write()?;
        let attempt = due.attempts + 1;
        let at = now();
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, latency_ms, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![due.id, attempt, at, outcome.status.map(i64::from), outcome.latency.as_millis() as i64, outcome.error],
        )?;
        let delivered = outcome.status.is_some_and(|s| (200..300).contains(&s));
        let retryable = match outcome.status {
            None => true,
            Some(status) => status == 408 || status == 429 || status >= 500,
        };
        let doublings = u32::try_from(attempt - 1).unwrap_or(u32::MAX).min(31);
        let backoff = first_retry.saturating_mul(1 << doublings).min(MAX_BACKOFF);
        let created = time::OffsetDateTime::parse(&due.created_at, &time::format_description::well_known::Rfc3339)
            .map_err(|e| Error::Internal(format!("delivery {} has a bad created_at: {e}", due.id)))?;
        let next = time::OffsetDateTime::now_utc() + backoff;
        let (state, next_attempt_at) = if delivered {
            ("delivered", None)
        } else if retryable && next < created + RETRY_FOR {
            ("pending", Some(format_time(next)))
        } else {
            ("failed", None)
        };
        tx.execute(
            "UPDATE webhook_deliveries SET state = ?2, delivered_at = ?3, next_attempt_at = ?4 WHERE id = ?1",
            params![due.id, state, delivered.then_some(&at), next_attempt_at],
        )?;
        tx.commit()?;
        Ok(json!({"attempt": attempt, "status": outcome.status, "state": state, "next_attempt_at": next_attempt_at, "error": outcome.error}))
    }
}

/// Queues the job that sends a webhook's deliveries, to run at `at` (None:
/// now), unless one is queued already that runs by then.
fn enqueue_delivery_job(tx: &sql::Connection, team_id: &str, webhook_id: &str, at: Option<String>) -> Result<()> {
    let at = at.unwrap_or_else(now);
    let queued: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM jobs WHERE subject_id = ?1 AND kind = ?2 AND state = 'queued' AND run_after <= ?3 LIMIT 1")?
        .query_row(params![webhook_id, DELIVERY_JOB, at], |r| r.get(0))
        .optional()?;
    if queued.is_none() {
        enqueue_job_in(tx, team_id, DELIVERY_JOB, Some(webhook_id), json!({}), Some(at))?;
    }
    Ok(())
}

/// What an event is about: a model of a team, and maybe one of its versions.
pub(in crate::registry) struct EventSubject<'a> {
    pub team_id: &'a str,
    pub model_id: &'a str,
    pub version_id: Option<&'a str>,
}

/// Records `event` for every webhook of the team that wants it, inside the
/// caller's write transaction (see the module's doc). `data` is what the
/// event adds (an alias's name, a test's status). Call it before a deletion,
/// so the model's name and the version's number can still be read.
pub(in crate::registry) fn emit(tx: &sql::Connection, event: &str, subject: EventSubject, data: Value) -> Result<()> {
    debug_assert!(EVENTS.contains(&event), "{event} is not in EVENTS");
    let hooks: Vec<(String, String)> = tx
        .prepare_cached("SELECT id, events FROM webhooks WHERE team_id = ?1")?
        .query_map([subject.team_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<sql::Result<_>>()?;
    let wanted: Vec<String> = hooks
        .into_iter()
        .filter(|(_, events)| serde_json::from_str::<Vec<String>>(events).is_ok_and(|e| e.iter().any(|e| e == event)))
        .map(|(id, _)| id)
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let model_name: Option<String> =
        tx.prepare_cached("SELECT name FROM models WHERE id = ?1")?.query_row([subject.model_id], |r| r.get(0)).optional()?;
    let version = match subject.version_id {
        None => Value::Null,
        Some(id) => tx
            .prepare_cached("SELECT number, label FROM model_versions WHERE id = ?1")?
            .query_row([id], |r| Ok(json!({"id": id, "number": r.get::<_, i64>(0)?, "label": r.get::<_, Option<String>>(1)?})))
            .optional()?
            .unwrap_or_else(|| json!({"id": id})),
    };
    let event_id = new_id();
    let at = now();
    let payload = json!({
        "id": event_id,
        "event": event,
        "created_at": at,
        "team_id": subject.team_id,
        "model": {"id": subject.model_id, "name": model_name},
        "version": version,
        "data": data,
    })
    .to_string();
    for webhook_id in wanted {
        let delivery_id = new_id();
        tx.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, event, payload, state, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)",
            params![delivery_id, webhook_id, event_id, event, payload, at],
        )?;
        enqueue_delivery_job(tx, subject.team_id, &webhook_id, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_http_without_credentials() {
        assert!(check_url("https://hooks.example.com/modelreg?x=1").is_ok());
        assert!(check_url("http://127.0.0.1:9000/").is_ok());
        for bad in ["ftp://x", "https://", "https://user:pw@host/", "javascript:alert(1)", "https://a b/"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_must_be_known() {
        assert!(check_events(&["version.created".into()]).is_ok());
        assert!(check_events(&[]).is_err());
        assert!(check_events(&["version.made".into()]).is_err());
    }
}
