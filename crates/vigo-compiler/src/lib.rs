//! The Vigo config compiler: from the config repository (`nodes.vgo` and
//! `modules/<role>.vgo`, docs/modules.md) to one [`Catalog`](vigo_catalog::Catalog)
//! per envoy.
//!
//! [`ConfigRepo::load`] reads and validates every file once (typed fields,
//! absolute paths, modes, durations, secret paths; templates parsed once),
//! collecting every problem as a [`Diagnostic`] with file, line, column and
//! resource. [`ConfigRepo::compile`] then renders one envoy's catalog
//! synchronously: node entries matched by glob, roles united, vars merged,
//! templates rendered with secrets as opaque tokens, secret taint refused in
//! command lines, names and references checked, and the `depends_on`/`notify`
//! graph checked for cycles. [`ConfigRepo::check`] validates every module
//! the way `vigocli check` needs.
//!
//! No message this crate produces contains a secret value: secrets reach the
//! template engine only as references, and values are copied into
//! [`Catalog::secrets`](vigo_catalog::Catalog::secrets) only after rendering.
//!
//! The module language is documented for users in `docs/modules.md`.

mod check;
mod compile;
mod diagnostics;
mod display;
mod repo;
mod resource;
mod vars;
mod yaml;

pub use compile::{Compiled, SecretIndex};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use display::{catalog_json, render_catalog_text, render_catalog_text_revealed};
pub use repo::{ConfigRepo, MODULES_DIR, NODES_FILE};
