//! Work done on models, as rows: execution environments and their builds,
//! dependency builds, model tests, insights, datasets, conversions and format
//! artifacts, Paperspace machines, and the job records that drive them all
//! (`crate::jobs` runs them; `crate::compute` does the running).

pub mod conversions;
pub mod datasets;
pub mod dependency_builds;
pub mod envbuild;
pub mod environments;
pub mod formats;
pub mod insights;
pub mod jobs;
pub mod machines;
pub mod model_tests;
