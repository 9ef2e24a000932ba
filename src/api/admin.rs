//! modelreg's own administration API, `/api/modelreg/v1/`: teams, users and
//! API keys over HTTP, so that a team admin can manage keys without a shell
//! on the server. The CLI's `teams`, `users` and `keys` use it with
//! `--server`, and print what it answers, which is what they print offline
//! (the same `Team`, `User` and `ApiKey` rows).
//!
//! Who may do what is the registry's rule (`Registry::administered_team`,
//! `keys_for`): a team admin manages their own team's users and keys, an
//! admin of the first team (an operator) every team's and creates teams;
//! anyone lists, creates and revokes their own keys (`POST keys` without
//! `user` makes one for the caller), and a member's key is 403 for the rest.
//! `GET me` says whose key it is.

use serde_json::{json, Value};

use crate::registry::fields::{opt_bool, opt_string};
use crate::http::{Ctx, Dialect, Request, Response, Router};
use crate::registry::{Error, NewUser, Result};

pub static ADMIN: Dialect =
    Dialect { name: "admin", prefix: "/api/modelreg/", render_error: crate::http::generic::render_generic_error, trailing_slash_optional: false, retry_resends_no_body: false };

pub fn routes(router: &mut Router) {
    router.add(&ADMIN, "GET", "/api/modelreg/v1/me", me);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/teams", list_teams);
    router.add(&ADMIN, "POST", "/api/modelreg/v1/teams", create_team);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/users", list_users);
    router.add(&ADMIN, "POST", "/api/modelreg/v1/users", create_user);
    router.add(&ADMIN, "GET", "/api/modelreg/v1/keys", list_keys);
    router.add(&ADMIN, "POST", "/api/modelreg/v1/keys", create_key);
    router.add(&ADMIN, "DELETE", "/api/modelreg/v1/keys/{id}", revoke_key);
    // Public to the router: the scrape token is not an API key, so this
    // handler checks the bearer itself (`metrics::authorize`).
    router.add_public(&crate::http::generic::GENERIC, "GET", "/metrics", crate::http::metrics::handler);
}

/// The caller: user, team and the key in use (no secret).
fn me(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let me = ctx.registry.whoami(req.who()?)?;
    Ok(Response::json(
        200,
        &json!({
            "user": {"id": me.user.id, "username": me.user.username, "email": me.user.email, "admin": me.user.is_admin},
            "team": {"id": me.team.id, "name": me.team.name},
            "key": me.key.map(|k| json!({"id": k.id, "label": k.label, "created_at": k.created_at})),
        }),
    ))
}

fn list_teams(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!(ctx.registry.teams_for(req.who()?)?)))
}

fn create_team(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let name = required_string(&body, "name")?;
    Ok(Response::json(201, &json!(ctx.registry.create_team_as(req.who()?, &name)?)))
}

fn list_users(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let team = req.query("team").map(str::to_string);
    Ok(Response::json(200, &json!(ctx.registry.users_for(req.who()?, team.as_deref())?)))
}

fn create_user(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    let new = NewUser {
        username: required_string(&body, "username")?,
        email: opt_string(&body, "email")?,
        is_admin: opt_bool(&body, "admin")?.unwrap_or(false),
        ..Default::default()
    };
    let team = opt_string(&body, "team")?;
    Ok(Response::json(201, &json!(ctx.registry.create_user_as(req.who()?, team.as_deref(), &new)?)))
}

fn list_keys(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    Ok(Response::json(200, &json!(ctx.registry.keys_for(req.who()?)?)))
}

fn create_key(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let body = req.json_object()?;
    // Without `user`, a key for the caller.
    let user = opt_string(&body, "user")?.filter(|u| !u.trim().is_empty());
    let label = opt_string(&body, "label")?.unwrap_or_default();
    let (key, secret) = ctx.registry.create_key_as(req.who()?, user.as_deref(), &label)?;
    Ok(Response::json(201, &key_created(&key, &secret)))
}

fn revoke_key(ctx: &Ctx, req: &mut Request) -> Result<Response> {
    let id = req.param("id").to_string();
    ctx.registry.revoke_key_as(req.who()?, &id)?;
    Ok(Response::empty(204))
}

/// A new key as both the API and the offline CLI print it: the secret
/// appears here and nowhere else, ever.
pub fn key_created(key: &crate::registry::ApiKey, secret: &str) -> Value {
    json!({"id": key.id, "user": key.username, "label": key.label, "secret": secret})
}

fn required_string(body: &serde_json::Map<String, Value>, field: &str) -> Result<String> {
    opt_string(body, field)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| Error::invalid(field, "is required"))
}
