//! What the registry holds: models, their versions and files, DataRobot's
//! custom model version rules and templates, the repositories versions are
//! pulled from, and whole-model operations (copies, zips).

pub mod aliases;
pub mod bundles;
pub mod custom_models;
pub mod custom_template_rules;
pub mod custom_templates;
pub mod custom_versions;
pub mod lineage;
pub mod models;
pub mod overview;
pub mod repositories;
pub mod requirements;
pub mod tags;
pub mod weights;
