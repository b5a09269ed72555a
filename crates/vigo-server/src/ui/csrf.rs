//! CSRF protection of the dashboard's forms: every POST carries the
//! session's token in a hidden `csrf` field, compared in constant time.
//! The sign-in form, which has no session yet, carries a one-time value
//! that must equal its `vigo_signin` cookie (a double submit), so another
//! site cannot sign a browser in to an account of its choosing.

/// The cookie that holds the sign-in form's value.
pub(crate) const SIGNIN_COOKIE: &str = "vigo_signin";

/// Whether `given` is `expected`, compared in constant time.
pub(crate) fn matches(expected: &str, given: Option<&str>) -> bool {
    given.is_some_and(|given| {
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), given.as_bytes())
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_token_matches() {
        assert!(matches("abc", Some("abc")));
        assert!(!matches("abc", Some("abd")));
        assert!(!matches("abc", Some("ab")));
        assert!(!matches("abc", Some("")));
        assert!(!matches("abc", None));
    }
}
