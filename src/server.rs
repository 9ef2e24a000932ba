//! Everything modelreg serves, mounted on one router: the three dialects,
//! modelreg's own routes (health, admin, metrics) and the web UI. The doors
//! do not know of each other; this is the one place that knows them all.

use crate::http::generic::{healthz, readyz, GENERIC};
use crate::http::Router;

pub fn router() -> Router {
    let mut router = Router::new(&GENERIC);
    router.add_public(&GENERIC, "GET", "/healthz", healthz);
    router.add_public(&GENERIC, "GET", "/readyz", readyz);
    crate::api::octomil::routes(&mut router);
    crate::api::paperspace::routes(&mut router);
    crate::api::datarobot::routes(&mut router);
    crate::ui::routes(&mut router);
    crate::api::admin::routes(&mut router);
    crate::api::modelreg_models::routes(&mut router);
    crate::api::webhooks::routes(&mut router);
    crate::api::modelreg_cards::routes(&mut router);
    router
}
