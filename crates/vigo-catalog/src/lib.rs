//! The compiled catalog: what one envoy must converge to.
//!
//! The compiler (`vigo-compiler`) produces a [`Catalog`] per envoy, the
//! server sends it at check-in, and the engine (`vigo-engine`) applies it.
//! Fields that may carry secret-derived text are [`SecretText`]: a list of
//! literal text and secret references, so the catalog itself never holds a
//! value inline. The values it needs travel beside it in
//! [`Catalog::secrets`], filled only on the wire to the envoy and with
//! `vigocli catalog --reveal`.
//!
//! Main types: [`Catalog`], [`Resource`], [`ResourceKind`], [`SecretText`],
//! [`Mode`], [`AbsPath`]. [`Catalog::fingerprint`] is the keyed HMAC of 6.3.
//! [`Tag`]s label resources; a [`Selection`] of tags and names picks the
//! part of a catalog a partial run applies.

mod fingerprint;
mod select;
mod types;

pub use fingerprint::{CATALOG_FORMAT, Fingerprint};
pub use select::{Selected, Selection, SelectionError, Tag, TagError};
pub use types::*;
