//! Sends a webhook's deliveries (the `webhook.deliver` job): each a POST of
//! the event's JSON, signed, within `--webhook-timeout`, without following
//! redirects. Which delivery goes next, and what an attempt means for the
//! next one, are the registry's rules (`registry::webhooks`); this is only
//! the HTTP.
//!
//! A receiver on a link-local address (169.254.0.0/16, fe80::/10: cloud
//! metadata services live there) is refused: a team admin chooses the URL,
//! and the request goes out from the registry's network.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::registry::webhooks::{signature, AttemptOutcome, DueDelivery, Take};
use crate::registry::{Job, Registry};

/// How deliveries are sent: `serve`/`worker --webhook-timeout` and
/// `--webhook-first-retry`.
#[derive(Clone, Copy, Debug)]
pub struct DeliverySettings {
    /// The longest one attempt may take, connecting included.
    pub timeout: Duration,
    /// The wait before the second attempt; each later wait doubles.
    pub first_retry: Duration,
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings { timeout: Duration::from_secs(5), first_retry: Duration::from_secs(10) }
    }
}

/// At most this many deliveries per job: then the webhook is let go and
/// queued again, so that one busy receiver shares the lane with the rest.
const DELIVERIES_PER_JOB: usize = 100;

/// Runs a delivery job: takes the webhook, sends its due deliveries oldest
/// first, one attempt each, and lets it go (see `registry::webhooks`).
pub fn run(registry: &Registry, settings: &DeliverySettings, job: &Job) -> Result<Value, String> {
    let webhook = job.subject_id.as_deref().ok_or("a delivery job names its webhook")?;
    // The job holds the webhook, not the process: two threads never send
    // one webhook's deliveries at once.
    let holder = job.id.as_str();
    // Long enough for one attempt and its bookkeeping; renewed before each.
    // A runner that dies holding it delays the webhook's deliveries by this.
    let hold = || crate::registry::format_time(time::OffsetDateTime::now_utc() + settings.timeout + Duration::from_secs(5));
    let error = |e: crate::registry::Error| e.to_string();
    match registry.take_webhook(webhook, holder, &hold()).map_err(error)? {
        Take::Taken => {}
        not_taken => return Ok(serde_json::json!({"skipped": format!("{not_taken:?}")})),
    }
    let mut attempts = Vec::new();
    let sent = (|| {
        while attempts.len() < DELIVERIES_PER_JOB {
            let Some(due) = registry.next_due_delivery(webhook)? else { break };
            registry.take_webhook(webhook, holder, &hold())?;
            attempts.push(registry.record_attempt(&due, &attempt(&due, settings.timeout), settings.first_retry)?);
        }
        Ok(())
    })();
    // Let go whatever happened, so that the next job can take it at once.
    registry.release_webhook(webhook, holder).map_err(error)?;
    sent.map_err(error)?;
    Ok(serde_json::json!({"attempts": attempts}))
}

fn attempt(due: &DueDelivery, timeout: Duration) -> AttemptOutcome {
    let started = Instant::now();
    let failed = |error: String| AttemptOutcome { status: None, latency: started.elapsed(), error: Some(error) };
    if let Err(refused) = check_destination(&due.url) {
        return failed(refused);
    }
    let sent = agent(timeout)
        .post(&due.url)
        .header("Content-Type", "application/json")
        .header("X-Modelreg-Event", &due.event)
        .header("X-Modelreg-Event-Id", &due.event_id)
        .header("X-Modelreg-Delivery", &due.id)
        .header("X-Modelreg-Signature", &signature(&due.secret, due.payload.as_bytes()))
        .send(due.payload.as_bytes());
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let error = (!(200..300).contains(&status)).then(|| format!("the receiver answered {status}"));
            AttemptOutcome { status: Some(status), latency: started.elapsed(), error }
        }
        Err(e) => failed(truncate(e.to_string())),
    }
}

/// One agent for every delivery of this process: its connections are
/// reused across deliveries to the same receiver.
fn agent(timeout: Duration) -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("modelreg-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    })
}

/// Refuses a receiver whose name resolves to a link-local address. The
/// check and the connection resolve separately; see docs/webhooks.md.
fn check_destination(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("the URL does not parse: {e}"))?;
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?;
    for address in addresses {
        if is_link_local(address.ip()) {
            return Err(format!("{host} resolves to the link-local address {}, which webhooks may not reach", address.ip()));
        }
    }
    Ok(())
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            let mapped = v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local());
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified() || mapped
        }
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > 500 {
        let mut end = 500;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses_are_refused() {
        for ip in ["169.254.169.254", "fe80::1", "0.0.0.0", "::ffff:169.254.169.254"] {
            assert!(is_link_local(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "10.0.0.5", "::1", "203.0.113.7"] {
            assert!(!is_link_local(ip.parse().unwrap()), "{ip}");
        }
        assert!(check_destination("http://169.254.169.254/latest/meta-data/").is_err());
        assert!(check_destination("http://127.0.0.1:9/").is_ok());
    }
}
