//! `modelreg webhooks …`: a team's webhooks (issue 24), on the data
//! directory as its first admin or with `--server` through
//! `/api/modelreg/v1/webhooks` (a team admin's key). Both print what the API
//! answers.

use clap::Subcommand;
use serde_json::{json, Value};

use super::models::print;
use super::remote::enc;
use super::table::{cell, Table};
use super::Target;
use crate::registry::Error;

const API: &str = "/api/modelreg/v1/webhooks";

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Send the team's events to a URL, signed with a secret (X-Modelreg-Signature: sha256=HMAC).
    #[command(after_help = "Example:\n  modelreg webhooks create https://ci.example.com/hooks/modelreg --secret \"$HOOK_SECRET\" \\\n      --event version.created --event alias.moved\n\nEvents: version.created, version.deprecated, version.deleted, alias.moved, model.deleted,\ntest.finished, conversion.finished")]
    Create {
        url: String,
        /// Signs every delivery; 8 to 256 characters. Never shown again.
        #[arg(long, env = "MODELREG_WEBHOOK_SECRET")]
        secret: String,
        /// An event to send (repeatable).
        #[arg(long = "event", value_name = "EVENT", required = true)]
        events: Vec<String>,
    },
    /// List the team's webhooks, newest first.
    #[command(after_help = "Example:\n  modelreg webhooks list")]
    List,
    /// Delete a webhook (deliveries not yet sent are dropped).
    #[command(after_help = "Example:\n  modelreg webhooks delete 0192f3c1-…")]
    Delete { id: String },
    /// A webhook's newest deliveries and how each attempt went.
    #[command(after_help = "Example:\n  modelreg webhooks deliveries 0192f3c1-… --limit 20")]
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

pub fn webhooks(target: &Target, cmd: WebhooksCommand, as_json: bool) -> Result<i32, Error> {
    match cmd {
        WebhooksCommand::Create { url, secret, events } => {
            let hook = match target {
                Target::Local { registry, who } => json!(registry.create_webhook(who, &url, &secret, events)?),
                Target::Remote(remote) => remote.post_json(API, &json!({"url": url, "secret": secret, "events": events}))?,
            };
            print(&hook, as_json, |h| println!("created webhook {} for {}", cell(&h["id"]), cell(&h["url"])));
        }
        WebhooksCommand::List => {
            let hooks = match target {
                Target::Local { registry, who } => json!(registry.list_webhooks(who)?),
                Target::Remote(remote) => remote.get_json(API)?,
            };
            print(&hooks, as_json, |hooks| {
                let mut table = Table::new(&["ID", "URL", "EVENTS", "CREATED"]);
                for h in hooks.as_array().into_iter().flatten() {
                    table.row(vec![cell(&h["id"]), cell(&h["url"]), list(&h["events"]), cell(&h["created_at"])]);
                }
                table.print();
            });
        }
        WebhooksCommand::Delete { id } => {
            match target {
                Target::Local { registry, who } => registry.delete_webhook(who, &id)?,
                Target::Remote(remote) => {
                    remote.delete(&format!("{API}/{}", enc(&id)))?;
                }
            }
            print(&json!({"id": id, "deleted": true}), as_json, |_| println!("deleted webhook {id}"));
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let deliveries = match target {
                Target::Local { registry, who } => json!(registry.webhook_deliveries(who, &id, limit)?),
                Target::Remote(remote) => remote.get_json(&format!("{API}/{}/deliveries?limit={limit}", enc(&id)))?,
            };
            print(&deliveries, as_json, |deliveries| {
                let mut table = Table::new(&["EVENT", "STATE", "ATTEMPTS", "LAST STATUS", "LAST LATENCY", "CREATED", "EVENT ID"]);
                for d in deliveries.as_array().into_iter().flatten() {
                    let last = d["attempts"].as_array().and_then(|a| a.last()).cloned().unwrap_or(Value::Null);
                    let status = if last["status"].is_null() { cell(&last["error"]) } else { cell(&last["status"]) };
                    let latency = last["latency_ms"].as_i64().map_or_else(|| "-".into(), |ms| format!("{ms} ms"));
                    let attempts = d["attempts"].as_array().map_or(0, Vec::len).to_string();
                    table.row(vec![cell(&d["event"]), cell(&d["state"]), attempts, status, latency, cell(&d["created_at"]), cell(&d["event_id"])]);
                }
                table.print();
            });
        }
    }
    Ok(0)
}

fn list(v: &Value) -> String {
    v.as_array().map(|items| items.iter().map(cell).collect::<Vec<_>>().join(",")).unwrap_or_else(|| "-".into())
}
