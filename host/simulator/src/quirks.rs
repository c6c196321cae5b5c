//! The behaviours of real SCIM servers the simulator can play, switched on by name.

use std::fmt;

macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal : $about:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            pub fn about(self) -> &'static str {
                match self { $($name::$variant => $about,)* }
            }

            pub fn parse(text: &str) -> Result<$name, String> {
                $name::ALL.iter().copied().find(|q| q.name() == text).ok_or_else(|| {
                    format!(
                        "unknown {} '{text}'; known: {}",
                        stringify!($name).to_lowercase(),
                        $name::ALL.iter().map(|q| q.name()).collect::<Vec<_>>().join(", ")
                    )
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

named! {
    /// Deviations from RFC 7644 seen in real servers (`--quirk NAME`).
    Quirk {
        FilterIgnored = "filter-ignored": "ignores filter and returns every resource",
        FilterRejected = "filter-rejected": "answers 400 invalidFilter to any filter",
        OrFilterRejected = "or-filter-rejected": "answers 400 invalidFilter to a filter that joins terms with or (single eq only, as ZIA documents)",
        RfcRemoveRejected = "rfc-remove-rejected": "answers 400 to a remove with path members[value eq \"...\"]",
        EntraRemoveRejected = "entra-remove-rejected": "answers 400 to a remove with path members and a value list",
        PathlessAddOnly = "pathless-add-only": "answers 400 to an add with path members; only {\"op\":\"add\",\"value\":{\"members\":[...]}} works",
        DuplicateMembers = "duplicate-members": "stores a member again on a repeated add",
        PatchReturns200 = "patch-returns-200": "answers PATCH with 200 and the group instead of 204",
        LoweredCount = "lowered-count": "returns at most 2 resources a page, whatever count asks",
        ZscalerErrors = "zscaler-errors": "error bodies in Zscaler's shape {id, code, message, reason}",
        ForbiddenOnBadToken = "forbidden-on-bad-token": "answers 403 instead of 401 to a missing or wrong token",
        NoUserGroups = "no-user-groups": "users carry no groups list",
        NoMembership = "no-membership": "no way to read membership: no groups on users, member filters refused, groups list no members and the Group schema says members are never returned",
        EmptyMembersOmitted = "empty-members-omitted": "leaves members out of a group that has none (RFC 7643 2.5 allows it), and lists them whenever a group has some",
        EchoAuthorization = "echo-authorization": "error details echo the request's Authorization header",
        EchoTokenEncoded = "echo-token-encoded": "error answers echo the bearer token percent-encoded, in base64 and \\u-escaped in the JSON, and in an X-Echo header",
        EchoTokenAsText = "echo-token-as-text": "error answers are text/plain echoing the bearer token with its characters JSON-escaped (\\u0074, \\/) outside any JSON, and in a response header named after it",
        ListedTwice = "listed-twice": "list answers show every resource twice",
        ProjectionRejected = "projection-rejected": "answers 400 to any attributes or excludedAttributes parameter",
        UnsupportedAs501 = "unsupported-as-501": "refuses the forms other quirks refuse with 501 Not Implemented instead of 400",
        UnsupportedAs405 = "unsupported-as-405": "refuses the forms other quirks refuse with 405 Method Not Allowed instead of 400",
    }
}

named! {
    /// Failures the simulator can inject (`--fault NAME`).
    Fault {
        DropConnection = "drop-connection": "the first answer to each request path is cut off mid-response (connection dropped)",
        Stall = "stall": "every answer stalls for 30 seconds, past any sensible timeout",
        Burst5xx = "burst-5xx": "the first 3 requests get 503",
        RateLimitSeconds = "rate-limit-seconds": "the first request gets 429 with Retry-After: 1",
        RateLimitDate = "rate-limit-date": "the first request gets 429 with Retry-After as an HTTP date 1 s ahead",
        MalformedJson = "malformed-json": "JSON bodies are malformed",
        WrongContentType = "wrong-content-type": "answers carry Content-Type text/html",
        EncodedUnasked = "encoded-unasked": "answers are compressed (Content-Encoding: gzip) although no Accept-Encoding asked for it",
        TruncatedBody = "truncated-body": "bodies are shorter than their Content-Length, then the connection closes",
        Slow = "slow": "every answer is delayed 200 ms (a distant tenant)",
        ConflictOnce = "conflict-once": "the first PATCH answers 409 and changes nothing",
        DropAfterChange = "drop-after-change": "every PATCH that succeeds is applied, then its answer is cut off (connection dropped)",
    }
}
