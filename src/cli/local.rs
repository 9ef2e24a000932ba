//! The offline side of `models` and `versions`: the registry in the data
//! directory, acting as its operator (the first team's admin).

use std::path::Path;

use crate::registry::{Error, Principal, Registry};

pub(super) struct Local {
    pub(super) registry: Registry,
    pub(super) who: Principal,
}

impl Local {
    pub(super) fn open(data_dir: &Path) -> Result<Local, Error> {
        let registry = Registry::open_existing(data_dir)?;
        let who = registry.operator()?;
        Ok(Local { registry, who })
    }
}
