//! `--tags` and `--resource`: the flags of a partial run, shared by `apply`
//! and `run --once` (docs/operations.md, "Partial runs").

use vigo_catalog::{Selection, Tag};

/// Which resources to apply; none given: the whole catalog.
#[derive(Debug, clap::Args)]
pub(crate) struct SelectArgs {
    /// Apply only the resources carrying one of these tags, and what they
    /// depend on (comma-separated, or the flag repeated).
    #[arg(long, value_name = "TAG[,TAG...]", value_delimiter = ',')]
    tags: Vec<Tag>,
    /// Apply only this resource, and what it depends on (repeatable).
    #[arg(long = "resource", value_name = "NAME")]
    resources: Vec<String>,
}

impl SelectArgs {
    /// The selection the flags ask for (empty: everything).
    pub(crate) fn selection(&self) -> Selection {
        Selection {
            tags: self.tags.clone(),
            resources: self.resources.clone(),
        }
    }
}
