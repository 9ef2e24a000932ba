//! Running custom models for real: DataRobot's DRUM in a warm server per
//! job (`drum`), contained without a container engine (`contain`), checked
//! the way DataRobot's custom model tests check them (`checks`), on CSV
//! datasets read and rewritten as streams (`table`).

pub mod contain;
pub mod checks;
pub mod drum;
pub mod jobs;
pub mod table;
