//! Enums whose variants have fixed kebab-case names: the JSON document, the manifest and the WIT
//! all spell them the same way. Each list is written once, in a `*_variants!` macro; the enum
//! here and the conversions to and from each side's WIT bindings are generated from it.

/// Defines an enum from a variant list: `ALL`, `as_str`, `parse`, `Display`, `Serialize` and a
/// `Deserialize` whose error names the accepted values.
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident; $($variant:ident = $text:literal),* $(,)?) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $(#[doc = $text] $variant,)*
        }

        impl $name {
            /// Every value, in the order the WIT lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The name as the JSON document spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $name::parse(&text).ok_or_else(|| {
                    let known: Vec<&str> = $name::ALL.iter().map(|value| value.as_str()).collect();
                    serde::de::Error::custom(format!("\"{text}\" is not one of {}", known.join(", ")))
                })
            }
        }
    };
}

/// Converts a value between two enums built from the same variant list (the plain model and a
/// WIT binding of it): `error_kind_variants! { map_variants!(value, wit::ErrorKind => ErrorKind;) }`.
#[macro_export]
macro_rules! map_variants {
    ($value:expr, $from:path => $to:path; $($variant:ident = $text:literal),* $(,)?) => {{
        use $from as Source;
        use $to as Target;
        match $value {
            $(Source::$variant => Target::$variant,)*
        }
    }};
}

/// The error kinds a result can carry; `$callback! { PREFIX... Variant = "name", ... }`.
#[macro_export]
macro_rules! error_kind_variants {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $callback! { $($prefix)*
            InvalidInput = "invalid-input",
            InvalidConfig = "invalid-config",
            AuthFailed = "auth-failed",
            UserNotFound = "user-not-found",
            GroupNotFound = "group-not-found",
            AmbiguousGroup = "ambiguous-group",
            RateLimited = "rate-limited",
            Denied = "denied",
            Timeout = "timeout",
            Transport = "transport",
            Tls = "tls",
            TooLarge = "too-large",
            Redirect = "redirect",
            Server = "server",
            Protocol = "protocol",
            LookupLimit = "lookup-limit",
            ProtectedUser = "protected-user",
            PluginLoad = "plugin-load",
            PluginTimeout = "plugin-timeout",
            PluginOutOfMemory = "plugin-out-of-memory",
            PluginPanicked = "plugin-panicked",
            PluginTrapped = "plugin-trapped",
        }
    };
}

/// What can happen to one user at one provider.
#[macro_export]
macro_rules! user_outcome_variants {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $callback! { $($prefix)*
            Added = "added",
            AlreadyMember = "already-member",
            Removed = "removed",
            NotMember = "not-member",
            WouldAdd = "would-add",
            WouldRemove = "would-remove",
            Member = "member",
            NotInProvider = "not-in-provider",
        }
    };
}

/// The overall status of an action's result.
#[macro_export]
macro_rules! status_variants {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $callback! { $($prefix)*
            Success = "success",
            Partial = "partial",
            Failed = "failed",
        }
    };
}

/// Which SCIM service a provider is.
#[macro_export]
macro_rules! profile_variants {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $callback! { $($prefix)*
            Zpa = "zpa",
            Zia = "zia",
            Generic = "generic",
        }
    };
}

/// The kinds of action a manifest declares.
#[macro_export]
macro_rules! action_kind_variants {
    ($callback:ident ! ( $($prefix:tt)* )) => {
        $callback! { $($prefix)*
            Test = "test",
            Contain = "contain",
            Correct = "correct",
            Investigate = "investigate",
        }
    };
}
