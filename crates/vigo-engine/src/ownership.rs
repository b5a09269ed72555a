//! Owner and group names to numeric ids, and back for messages.

use nix::unistd::{Gid, Group, Uid, User};

/// The uid of `name` (a user name, or a number).
pub(crate) fn user_id(name: &str) -> Result<Uid, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Uid::from_raw(id));
    }
    match User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid),
        Ok(None) => Err(format!(
            "user '{name}' does not exist on this host; create it first (a package or an exec resource) and list that in depends_on"
        )),
        Err(e) => Err(format!("looking up user '{name}': {e}")),
    }
}

/// The gid of `name` (a group name, or a number).
pub(crate) fn group_id(name: &str) -> Result<Gid, String> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(format!(
            "group '{name}' does not exist on this host; create it first (a package or an exec resource) and list that in depends_on"
        )),
        Err(e) => Err(format!("looking up group '{name}': {e}")),
    }
}

/// A user's name for messages, or its number.
pub(crate) fn user_name(uid: u32) -> String {
    match User::from_uid(Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// A group's name for messages, or its number.
pub(crate) fn group_name(gid: u32) -> String {
    match Group::from_gid(Gid::from_raw(gid)) {
        Ok(Some(group)) => group.name,
        _ => gid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(user_id("0").unwrap(), Uid::from_raw(0));
        assert_eq!(user_id("root").unwrap(), Uid::from_raw(0));
        assert_eq!(group_id("0").unwrap(), Gid::from_raw(0));
        assert_eq!(user_name(0), "root");
        let err = user_id("no-such-user-vigo").unwrap_err();
        assert!(err.contains("'no-such-user-vigo' does not exist"), "{err}");
    }
}
