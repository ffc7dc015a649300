//! [`ExperimentError`]: why an experiment could not run, with its cause as the
//! error's source where there is one.

use std::path::PathBuf;

use super::scenario::UnknownScenario;
use crate::config::ConfigError;
use crate::domain::StartSystemError;
use crate::storage::StorageError;

/// Why an experiment, a run or the crash writer failed.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// A policy file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The storage backend could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The to-do system could not start.
    #[error(transparent)]
    Start(#[from] StartSystemError),
    /// A name that is no scenario's.
    #[error(transparent)]
    Scenario(#[from] UnknownScenario),
    /// No policy files were named and `policies/` cannot be read.
    #[error("cannot read policies/: {0} (give --policies FILE...)")]
    PolicyDir(#[source] std::io::Error),
    /// The `--out` directory could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An output file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The crash scenario's writer process could not be started.
    #[error("cannot start the writer process: {0}")]
    Writer(#[source] std::io::Error),
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] super::plot::PlotError),
    /// A child run failed or answered with something that is no report.
    #[error("{0}")]
    Run(String),
    /// Another OS error (temporary directory, this executable's path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
