//! A macro for string-valued enums that keep values they do not know.
//!
//! Upstream stores states and modes as Go string types; another controller may write a value this
//! crate has never heard of, and reading then writing the object must not lose it. Each enum gets
//! an `Other(String)` arm, serializes as a plain JSON string, and has a schema that is either a free
//! string (`open`) or a string with an `enum` list (`closed`), whichever upstream's CRD has.
//! A variant written without `= "value"` goes over the wire as its own name.

/// Declares a string enum with an `Other(String)` arm. See the module docs.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($schema:ident) {
            $( $(#[$vmeta:meta])* $variant:ident $(= $value:literal)? ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every value this crate knows, in declaration order.
            pub const KNOWN: &'static [&'static str] = &[$(string_enum!(@wire $variant $($value)?)),+];

            /// The wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => string_enum!(@wire $variant $($value)?), )+
                    Self::Other(value) => value.as_str(),
                }
            }

            /// Whether this is a value upstream does not define.
            pub fn is_other(&self) -> bool {
                matches!(self, Self::Other(_))
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $( string_enum!(@wire $variant $($value)?) => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                match value.as_str() {
                    $( string_enum!(@wire $variant $($value)?) => Self::$variant, )+
                    _ => Self::Other(value),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(value))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                string_enum!(@schema $schema Self::KNOWN)
            }
        }
    };
    (@wire $variant:ident) => {
        stringify!($variant)
    };
    (@wire $variant:ident $value:literal) => {
        $value
    };
    (@schema open $known:expr) => {
        schemars::json_schema!({"type": "string"})
    };
    (@schema closed $known:expr) => {
        schemars::json_schema!({"type": "string", "enum": $known})
    };
}

pub(crate) use string_enum;
