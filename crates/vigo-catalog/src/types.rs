//! Catalog data types and their JSON form.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use vigo_secrets::{SecretPath, SecretValue};

use crate::Tag;

/// The compiled desired state of one envoy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The envoy's name.
    pub envoy: String,
    /// Resources in declaration order (roles in order, resources in file
    /// order); the engine derives execution order from the edges.
    pub resources: Vec<Resource>,
    /// Every secret the resources reference, with its version and, when
    /// revealed, its value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<SecretPath, CatalogSecret>,
}

/// One secret the catalog refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSecret {
    /// The backend's version of the value.
    pub version: u64,
    /// The value: present on the wire to the envoy and with `--reveal`,
    /// absent in redacted output.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "reveal::serialize",
        deserialize_with = "reveal::deserialize"
    )]
    pub value: Option<SecretValue>,
}

/// One resource of a catalog.
///
/// Unknown fields are still refused: everything the common fields do not
/// take is handed to the type's own struct, which denies unknown fields
/// (serde cannot combine `flatten` with `deny_unknown_fields` here).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resource {
    /// Unique within the catalog.
    pub name: String,
    /// Type and type-specific fields.
    #[serde(flatten)]
    pub kind: ResourceKind,
    /// Resources that must be applied before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Resources that come after this one and get a refresh event when it
    /// changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Secrets whose rotation re-runs this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch_secret: Vec<SecretPath>,
    /// `always` or `changed` (execs: run only on refresh, trigger or first run).
    #[serde(default, skip_serializing_if = "When::is_always")]
    pub when: When,
    /// Labels that select the resource for a partial run (`--tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    /// Set by the server when a watched secret rotated; cleared once the
    /// envoy reports this resource applied.
    #[serde(
        rename = "_secret_triggered",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub secret_triggered: bool,
    /// Where the resource was declared, `modules/database.vgo:12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The resource types of docs/modules.md, "Resources", tagged by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceKind {
    /// A file with templated content.
    File(FileSpec),
    /// A directory.
    Directory(DirectorySpec),
    /// A command.
    Exec(ExecSpec),
    /// A systemd unit.
    Service(ServiceSpec),
    /// An OS package.
    Package(PackageSpec),
    /// A symbolic link.
    Symlink(SymlinkSpec),
    /// A local user account.
    User(UserSpec),
    /// A local group.
    Group(GroupSpec),
    /// One line of a file.
    Line(LineSpec),
}

impl ResourceKind {
    /// The type's name as written in modules: `file`, `exec`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Directory(_) => "directory",
            Self::Exec(_) => "exec",
            Self::Service(_) => "service",
            Self::Package(_) => "package",
            Self::Symlink(_) => "symlink",
            Self::User(_) => "user",
            Self::Group(_) => "group",
            Self::Line(_) => "line",
        }
    }
}

/// `file` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute target path.
    pub target_path: AbsPath,
    /// Rendered content, from `content` or a `template` file (absent:
    /// leave the content alone, unless `bytes` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<SecretText>,
    /// Content copied byte for byte from a repository file (`source`).
    /// Never set together with `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<FileBytes>,
    /// Permission bits.
    pub mode: Mode,
    /// Owning user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owning group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// `directory` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    /// Absolute target path.
    pub target_path: AbsPath,
    /// Permission bits.
    pub mode: Mode,
    /// Owning user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Owning group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// `exec` resource fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// Rendered command line, run by `/bin/sh -c`. Never secret-derived (the
    /// compiler rejects that); may contain the literal `{{secret_file}}`
    /// placeholder, replaced by the envoy with the temporary file's path.
    pub command: String,
    /// Text written to the command's standard input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<SecretText>,
    /// Text written to a transient 0600 file whose path replaces
    /// `{{secret_file}}` in the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<SecretText>,
    /// Skip the command when this path exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<AbsPath>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<AbsPath>,
    /// Kill the whole process group after this many seconds.
    pub timeout_secs: u64,
    /// Guard: skip the command when this command exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// Guard: run the command only when this command exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onlyif: Option<String>,
    /// Run as this user (name or numeric id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Run with this group (name or numeric id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Extra environment variables (never secret-derived).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// The file-creation mask the command starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<Mode>,
}

/// A file's content taken from the config repository, carried in JSON as
/// base64 so any bytes survive.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBytes {
    /// The repository file it was read from (`files/nginx/nginx.conf`).
    pub from: String,
    /// The bytes.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileBytes({}, {} bytes)", self.from, self.data.len())
    }
}

/// `symlink` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkSpec {
    /// Where the link is.
    pub target_path: AbsPath,
    /// What the link points to (absolute, or relative to the link's folder).
    pub points_to: String,
    /// Replace a regular file at `target_path` (never a directory).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// `user` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    /// Login name.
    pub user: String,
    /// Numeric user id (absent: chosen on creation, then left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Primary group, a name or numeric id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Supplementary groups, exactly (absent: left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// Home folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<AbsPath>,
    /// Login shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<AbsPath>,
    /// Create as a system account (only on creation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
    /// The password hash (crypt(3) form), always from a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretText>,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// `group` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// Group name.
    pub group: String,
    /// Numeric group id (absent: chosen on creation, then left alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Create as a system group (only on creation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system: bool,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// `line` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineSpec {
    /// The file (which must exist).
    pub target_path: AbsPath,
    /// The line, without its newline.
    pub line: String,
    /// A regular expression: the last line it matches is replaced by
    /// `line` (present), or every line it matches is removed (absent).
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
}

/// The placeholder in an exec command that the envoy replaces with the
/// path of the transient secret file.
pub const SECRET_FILE_PLACEHOLDER: &str = "{{secret_file}}";

/// `service` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Unit name, e.g. `postgresql` or `nginx.service`.
    pub service: String,
    /// Desired run state (absent: leave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
    /// Desired enablement (absent: leave it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `package` resource fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    /// Package name.
    pub package: String,
    /// `present` or `absent`.
    #[serde(default, skip_serializing_if = "Presence::is_present")]
    pub state: Presence,
    /// The exact version to install (only with `present`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `present` or `absent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Must exist.
    #[default]
    Present,
    /// Must not exist.
    Absent,
}

impl Presence {
    fn is_present(&self) -> bool {
        *self == Self::Present
    }
}

/// `running` or `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Active.
    Running,
    /// Inactive.
    Stopped,
}

/// When a resource runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every apply (state resources still change only what differs).
    #[default]
    Always,
    /// Execs only: on a refresh event, a secret trigger, or a first run.
    Changed,
}

impl When {
    fn is_always(&self) -> bool {
        *self == Self::Always
    }
}

/// Text that may contain secret values, kept as literal pieces and
/// references so the catalog never holds a value inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub Vec<Segment>);

/// A piece of [`SecretText`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// The value of a secret, inserted verbatim.
    Secret(SecretPath),
}

impl SecretText {
    /// Literal text with no secret in it.
    pub fn literal(text: impl Into<String>) -> Self {
        Self(vec![Segment::Text(text.into())])
    }

    /// The secrets this text references, in order of first use.
    pub fn secret_paths(&self) -> impl Iterator<Item = &SecretPath> {
        self.0.iter().filter_map(|s| match s {
            Segment::Secret(p) => Some(p),
            Segment::Text(_) => None,
        })
    }

    /// Whether any piece is a secret.
    pub fn uses_secrets(&self) -> bool {
        self.secret_paths().next().is_some()
    }

    /// The redacted form: every secret shown as `[secret:path]`. Safe to
    /// print and log.
    pub fn redacted(&self) -> String {
        self.0
            .iter()
            .map(|s| match s {
                Segment::Text(t) => t.clone(),
                Segment::Secret(p) => format!("[secret:{p}]"),
            })
            .collect()
    }

    /// The real text, with each secret looked up in `secrets`. The result is
    /// wrapped so it is zeroized on drop; `None` names the first secret the
    /// map has no value for.
    pub fn reveal(
        &self,
        secrets: &BTreeMap<SecretPath, CatalogSecret>,
    ) -> Result<zeroize::Zeroizing<String>, MissingSecret> {
        let mut out = zeroize::Zeroizing::new(String::new());
        for segment in &self.0 {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Secret(p) => {
                    let value = secrets
                        .get(p)
                        .and_then(|s| s.value.as_ref())
                        .ok_or_else(|| MissingSecret(p.clone()))?;
                    out.push_str(value.expose_secret());
                }
            }
        }
        Ok(out)
    }
}

/// A catalog referenced a secret whose value it does not carry.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the catalog carries no value for secret '{0}'")]
pub struct MissingSecret(pub SecretPath);

impl Catalog {
    /// An empty catalog (an envoy that matches no node entry).
    pub fn empty(envoy: impl Into<String>) -> Self {
        Self {
            envoy: envoy.into(),
            resources: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    /// The resource called `name`.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// A copy without secret values (for display and storage).
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for secret in copy.secrets.values_mut() {
            secret.value = None;
        }
        copy
    }

    /// Every secret value the catalog carries, for scrubbing output.
    pub fn secret_values(&self) -> impl Iterator<Item = &SecretValue> {
        self.secrets.values().filter_map(|s| s.value.as_ref())
    }
}

impl Resource {
    /// Every secret path the resource's fields use (not `watch_secret`).
    pub fn secret_paths(&self) -> Vec<&SecretPath> {
        let texts: Vec<&SecretText> = match &self.kind {
            ResourceKind::File(f) => f.content.iter().collect(),
            ResourceKind::Exec(e) => e.stdin.iter().chain(e.secret_file.iter()).collect(),
            ResourceKind::User(u) => u.password.iter().collect(),
            ResourceKind::Directory(_)
            | ResourceKind::Service(_)
            | ResourceKind::Package(_)
            | ResourceKind::Symlink(_)
            | ResourceKind::Group(_)
            | ResourceKind::Line(_) => Vec::new(),
        };
        let mut paths: Vec<&SecretPath> =
            texts.into_iter().flat_map(|t| t.secret_paths()).collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

/// Unix permission bits, written in modules and JSON as an octal string
/// (`"0644"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(u32);

impl Mode {
    /// Default for files.
    pub const FILE: Self = Self(0o644);
    /// Default for files whose content uses a secret.
    pub const SECRET_FILE: Self = Self(0o600);
    /// Default for directories.
    pub const DIRECTORY: Self = Self(0o755);

    /// Parses `"0644"`, `"644"` or `"0o644"`; rejects anything beyond 0o7777.
    pub fn parse(input: &str) -> Result<Self, ModeError> {
        let digits = input.strip_prefix("0o").unwrap_or(input);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
        {
            return Err(ModeError::NotOctal(input.to_owned()));
        }
        u32::from_str_radix(digits, 8)
            .map(Self)
            .map_err(|_| ModeError::NotOctal(input.to_owned()))
    }

    /// The bits, e.g. `0o644`.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// From raw bits (masked to 0o7777).
    pub fn from_bits(bits: u32) -> Self {
        Self(bits & 0o7777)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mode({self})")
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An absolute, normalised filesystem path (no `.` or `..` components).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbsPath(PathBuf);

impl AbsPath {
    /// Accepts only absolute paths without `.`/`..` components.
    pub fn parse(input: &str) -> Result<Self, PathError> {
        let path = Path::new(input);
        if !path.is_absolute() {
            return Err(PathError::Relative(input.to_owned()));
        }
        if path.components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::CurDir
            )
        }) {
            return Err(PathError::Dots(input.to_owned()));
        }
        if input.contains('\0') {
            return Err(PathError::Nul(input.escape_debug().to_string()));
        }
        Ok(Self(path.components().collect()))
    }

    /// The path.
    pub fn as_path(&self) -> &Path {
        &self.0
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Serialize for AbsPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.display())
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Why a mode was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModeError {
    /// Not one to four octal digits (with an optional `0o`).
    #[error("invalid mode '{0}': write it as an octal string such as \"0644\"")]
    NotOctal(String),
}

/// Why a path was refused as an [`AbsPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// It does not start with `/`.
    #[error("path '{0}' must be absolute (start with '/')")]
    Relative(String),
    /// It has a `.` or `..` component.
    #[error("path '{0}' must not contain '.' or '..'")]
    Dots(String),
    /// It holds a NUL byte (shown escaped).
    #[error("path '{0}' must not contain NUL")]
    Nul(String),
}

/// Serde of [`FileBytes::data`] as standard base64 text.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(data))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("file bytes are not base64: {e}")))
    }
}

/// Serde for the one place a secret value is written out on purpose: the
/// catalog handed to its envoy (or printed with `--reveal`).
mod reveal {
    use serde::{Deserialize, Deserializer, Serializer};
    use vigo_secrets::SecretValue;

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SecretValue>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => serializer.serialize_str(v.expose_secret()),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SecretValue>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(SecretValue::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> SecretPath {
        SecretPath::parse(p).unwrap()
    }

    #[test]
    fn modes_parse_and_print_in_octal() {
        assert_eq!(Mode::parse("0644").unwrap().bits(), 0o644);
        assert_eq!(Mode::parse("600").unwrap().to_string(), "0600");
        assert_eq!(Mode::parse("0o4755").unwrap().bits(), 0o4755);
        for bad in ["", "0648", "rw-r--r--", "07777x", "17777"] {
            assert!(Mode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn abs_paths_refuse_relative_and_dots() {
        assert!(AbsPath::parse("/etc/x.conf").is_ok());
        assert!(AbsPath::parse("etc/x").is_err());
        assert!(AbsPath::parse("/etc/../shadow").is_err());
        assert_eq!(AbsPath::parse("/etc//x").unwrap().to_string(), "/etc/x");
    }

    #[test]
    fn secret_text_redacts_and_reveals() {
        let text = SecretText(vec![
            Segment::Text("password = ".into()),
            Segment::Secret(path("vigo/db/password")),
            Segment::Text("\n".into()),
        ]);
        assert_eq!(text.redacted(), "password = [secret:vigo/db/password]\n");
        let mut secrets = BTreeMap::new();
        secrets.insert(
            path("vigo/db/password"),
            CatalogSecret {
                version: 1,
                value: None,
            },
        );
        assert!(text.reveal(&secrets).is_err());
        secrets.get_mut(&path("vigo/db/password")).unwrap().value = Some("s3cret".into());
        assert_eq!(
            text.reveal(&secrets).unwrap().as_str(),
            "password = s3cret\n"
        );
    }

    #[test]
    fn json_form_round_trips_and_redacts() {
        let mut catalog = Catalog::empty("db1.example.com");
        catalog.resources.push(Resource {
            name: "pg-config".into(),
            kind: ResourceKind::File(FileSpec {
                target_path: AbsPath::parse("/etc/pg/auth.conf").unwrap(),
                content: Some(SecretText(vec![
                    Segment::Text("password = ".into()),
                    Segment::Secret(path("vigo/db/password")),
                ])),
                bytes: None,
                mode: Mode::SECRET_FILE,
                owner: None,
                group: None,
                state: Presence::Present,
            }),
            depends_on: vec![],
            notify: vec!["pg-service".into()],
            watch_secret: vec![path("vigo/db/password")],
            when: When::Always,
            tags: vec![],
            secret_triggered: true,
            source: Some("modules/database.vgo:3".into()),
        });
        catalog.secrets.insert(
            path("vigo/db/password"),
            CatalogSecret {
                version: 2,
                value: Some("hunter2".into()),
            },
        );
        let revealed = serde_json::to_string(&catalog).unwrap();
        assert!(revealed.contains("\"value\":\"hunter2\""));
        assert!(revealed.contains("\"_secret_triggered\":true"));
        let back: Catalog = serde_json::from_str(&revealed).unwrap();
        assert_eq!(
            back.secret_values().next().unwrap().expose_secret(),
            "hunter2"
        );

        let redacted = serde_json::to_string(&catalog.redacted()).unwrap();
        assert!(!redacted.contains("hunter2"));
        insta::assert_snapshot!(serde_json::to_string_pretty(&catalog.redacted()).unwrap());
    }

    #[test]
    fn issue_15_file_bytes_round_trip_through_base64() {
        let data: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n']).collect();
        let json = r#"{"name":"x","type":"file","target_path":"/etc/x","mode":"0644"}"#;
        let mut resource: Resource = serde_json::from_str(json).unwrap();
        let ResourceKind::File(spec) = &mut resource.kind else {
            panic!("a file");
        };
        spec.bytes = Some(FileBytes {
            from: "files/x.bin".into(),
            data: data.clone(),
        });
        let text = serde_json::to_string(&resource).unwrap();
        assert!(
            text.contains(r#""bytes":{"from":"files/x.bin","data":""#),
            "{text}"
        );
        let back: Resource = serde_json::from_str(&text).unwrap();
        let ResourceKind::File(spec) = back.kind else {
            panic!("a file");
        };
        assert_eq!(spec.bytes.unwrap().data, data);
        let bad = text.replace(r#""data":""#, r#""data":"!"#);
        let err = serde_json::from_str::<Resource>(&bad).unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }

    #[test]
    fn issue_15_mode_and_path_errors_are_typed() {
        assert_eq!(Mode::parse("0x1"), Err(ModeError::NotOctal("0x1".into())));
        assert_eq!(
            AbsPath::parse("etc/x"),
            Err(PathError::Relative("etc/x".into()))
        );
        assert_eq!(
            AbsPath::parse("/etc/../x").unwrap_err().to_string(),
            "path '/etc/../x' must not contain '.' or '..'"
        );
    }

    #[test]
    fn unknown_resource_fields_are_refused() {
        let json = r#"{"name":"x","type":"package","package":"curl","bogus":1}"#;
        let err = serde_json::from_str::<Resource>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        let ok = r#"{"name":"x","type":"package","package":"curl"}"#;
        assert!(serde_json::from_str::<Resource>(ok).is_ok());
    }
}
