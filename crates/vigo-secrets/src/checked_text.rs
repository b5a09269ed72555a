//! What the validated text types ([`SecretPath`](crate::SecretPath) and
//! [`EnvoyName`](crate::EnvoyName)) share: a rejected input shown truncated,
//! and the standard trait impls of a string that only `parse` can make.

/// `input`, cut to 80 bytes (at a character boundary) with `...` after, for
/// an error message.
pub(crate) fn truncate_for_display(input: &str) -> String {
    const SHOWN: usize = 80;
    if input.len() <= SHOWN {
        return input.to_owned();
    }
    let mut end = SHOWN;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &input[..end])
}

/// Debug (`Type("text")`), Display (the text), `FromStr`, `AsRef<str>` and
/// serde for a `struct $ty(String)` whose `parse` validates: deserialising
/// goes through `parse` too, so no invalid value gets in that way.
macro_rules! checked_text_impls {
    ($ty:ident, $error:ty) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($ty), "({:?})"), self.0)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let raw = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                Self::parse(&raw).map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use checked_text_impls;
