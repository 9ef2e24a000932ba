//! What the registry holds: models, their versions and files, DataRobot's
//! custom model version rules and templates, the repositories versions are
//! pulled from, whole-model operations (copies, zips), and what weights
//! files of today's formats say about themselves.

pub mod aliases;
pub mod bundles;
pub mod cards;
pub mod custom_models;
pub mod custom_template_rules;
pub mod custom_templates;
pub mod custom_versions;
pub mod frameworks;
pub mod lineage;
pub mod models;
pub mod overview;
pub mod repositories;
pub mod requirements;
pub mod tags;
pub mod weight_facts;
pub mod weights;
