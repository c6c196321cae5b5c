//! SCIM filters (RFC 7644 §3.4.2.2): parsed into a tree and evaluated against JSON resources.
//! Also used to parse PATCH paths such as `members[value eq "7"]` or `emails[type eq "work"].value`.

use serde_json::Value;
use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    /// `attr[filter]`: some value of the multi-valued `attr` matches the inner filter.
    ValuePath(AttrPath, Box<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// An attribute path: an optional extension schema URN, the attribute, an optional sub-attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub schema: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

impl PatchPath {
    /// A core attribute alone: no extension, sub-attribute or filter.
    pub fn is_plain(&self) -> bool {
        self.attr.schema.is_none() && self.attr.sub.is_none() && self.filter.is_none() && self.sub.is_none()
    }

    /// `x` of a core `attr[value eq "x"]`, the path that names one value by its id.
    pub fn value_filter(&self) -> Option<&str> {
        match &self.filter {
            Some(Filter::Compare(AttrPath { schema: None, name, sub: None }, CompareOp::Eq, Value::String(value)))
                if self.attr.schema.is_none()
                    && self.attr.sub.is_none()
                    && self.sub.is_none()
                    && name.eq_ignore_ascii_case("value") =>
            {
                Some(value)
            }
            _ => None,
        }
    }
}

const CORE_SCHEMAS: &[&str] =
    &["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:core:2.0:Group"];

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '[' => {
                chars.next();
                tokens.push(Token::OpenBracket);
            }
            ']' => {
                chars.next();
                tokens.push(Token::CloseBracket);
            }
            '"' => {
                // A JSON string literal, escapes included.
                let mut literal = String::from('"');
                chars.next();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    literal.push(c);
                    if c == '\\' {
                        literal.push(chars.next().ok_or("unterminated string")?);
                    } else if c == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err("unterminated string".into());
                }
                let value: String = serde_json::from_str(&literal).map_err(|e| format!("bad string {literal}: {e}"))?;
                tokens.push(Token::Str(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "()[]\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn or_expression(&mut self) -> Result<Filter, String> {
        let mut left = self.and_expression()?;
        while self.peek_keyword("or") {
            self.next();
            let right = self.and_expression()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expression(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        while self.peek_keyword("and") {
            self.next();
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, String> {
        if self.peek_keyword("not") {
            self.next();
            self.expect(Token::Open, "'(' after not")?;
            let inner = self.or_expression()?;
            self.expect(Token::Close, "')'")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.next();
            let inner = self.or_expression()?;
            self.expect(Token::Close, "')'")?;
            return Ok(inner);
        }
        let path = match self.next() {
            Some(Token::Word(word)) => parse_attr_path(&word)?,
            other => return Err(format!("expected an attribute, found {other:?}")),
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.next();
            let inner = self.or_expression()?;
            self.expect(Token::CloseBracket, "']'")?;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let operator = match self.next() {
            Some(Token::Word(word)) => word.to_ascii_lowercase(),
            other => return Err(format!("expected an operator after {}, found {other:?}", path.name)),
        };
        let op = match operator.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            other => return Err(format!("unknown operator '{other}'")),
        };
        let value = match self.next() {
            Some(Token::Str(text)) => Value::String(text),
            Some(Token::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&word)
                    .map(Value::Number)
                    .map_err(|_| format!("'{word}' is not a valid comparison value"))?,
            },
            other => return Err(format!("expected a value, found {other:?}")),
        };
        Ok(Filter::Compare(path, op, value))
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), String> {
        match self.next() {
            Some(found) if found == token => Ok(()),
            other => Err(format!("expected {what}, found {other:?}")),
        }
    }
}

pub fn parse_attr_path(text: &str) -> Result<AttrPath, String> {
    let (schema, rest) = if text.to_ascii_lowercase().starts_with("urn:") {
        let split = text.rfind(':').ok_or("bad URN path")?;
        let schema = &text[..split];
        let rest = &text[split + 1..];
        let core = CORE_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(schema));
        (if core { None } else { Some(schema.to_string()) }, rest)
    } else {
        (None, text)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub.to_string())),
        None => (rest, None),
    };
    let valid =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
    if !valid(name) || !sub.as_deref().is_none_or(valid) {
        return Err(format!("'{text}' is not an attribute path"));
    }
    Ok(AttrPath { schema, name: name.to_string(), sub })
}

pub fn parse(text: &str) -> Result<Filter, String> {
    let mut parser = Parser { tokens: tokenize(text)?, position: 0 };
    let filter = parser.or_expression()?;
    if parser.position != parser.tokens.len() {
        return Err(format!("unexpected {:?}", parser.tokens[parser.position]));
    }
    Ok(filter)
}

pub fn parse_patch_path(text: &str) -> Result<PatchPath, String> {
    let Some(open) = text.find('[') else {
        let attr = parse_attr_path(text)?;
        return Ok(PatchPath { sub: None, filter: None, attr });
    };
    let close = text.rfind(']').ok_or("unclosed '['")?;
    let attr = parse_attr_path(&text[..open])?;
    let filter = parse(&text[open + 1..close])?;
    let sub = match &text[close + 1..] {
        "" => None,
        rest => Some(rest.strip_prefix('.').ok_or("junk after ']'")?.to_string()),
    };
    Ok(PatchPath { attr, filter: Some(filter), sub })
}

/// Ids, external ids and references compare case-exactly; other strings do not (RFC 7643).
fn case_exact(path: &AttrPath) -> bool {
    let leaf = path.sub.as_deref().unwrap_or(&path.name);
    matches!(leaf, "id" | "externalId" | "value" | "$ref") && !(path.name == "emails" || path.name == "phoneNumbers")
}

/// The values an attribute path reaches in `resource` (multi-valued attributes flattened).
pub fn resolve<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let container = match &path.schema {
        Some(schema) => match resource.get(schema.as_str()) {
            Some(extension) => extension,
            None => return Vec::new(),
        },
        None => resource,
    };
    let Some(object) = container.as_object() else {
        return Vec::new();
    };
    let Some((_, top)) = object.iter().find(|(key, _)| key.eq_ignore_ascii_case(&path.name)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match top {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => items,
        Some(sub) => items
            .into_iter()
            .filter_map(|item| item.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(sub)).map(|(_, v)| v))
            .collect(),
    }
}

impl Filter {
    /// Whether the filter reads the top-level attribute `name` (any case, any extension).
    pub fn mentions(&self, name: &str) -> bool {
        match self {
            Filter::And(a, b) | Filter::Or(a, b) => a.mentions(name) || b.mentions(name),
            Filter::Not(inner) => inner.mentions(name),
            Filter::Present(path) | Filter::Compare(path, ..) | Filter::ValuePath(path, _) => {
                path.name.eq_ignore_ascii_case(name)
            }
        }
    }
}

pub fn matches(filter: &Filter, resource: &Value) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
        Filter::Not(inner) => !matches(inner, resource),
        Filter::Present(path) => resolve(resource, path).iter().any(|v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        }),
        Filter::Compare(path, op, expected) => {
            let exact = case_exact(path);
            resolve(resource, path).iter().any(|actual| compare(actual, *op, expected, exact))
        }
        // Inside the brackets, attributes are sub-attributes of each value of `path`.
        Filter::ValuePath(path, inner) => resolve(resource, path).iter().any(|item| matches(inner, item)),
    }
}

/// Two strings equal as an attribute of this case-exactness compares them, allocating only when
/// a non-ASCII string must be lower-cased (a member filter runs this over 10,000 values).
fn same_text(a: &str, b: &str, case_exact: bool) -> bool {
    if case_exact || a == b {
        return a == b;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.to_lowercase() == b.to_lowercase()
}

fn compare(actual: &Value, op: CompareOp, expected: &Value, case_exact: bool) -> bool {
    let as_text = |v: &Value| match v {
        Value::String(s) => Some(if case_exact { s.clone() } else { s.to_lowercase() }),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match op {
        CompareOp::Eq => match (actual, expected) {
            (_, Value::Null) => actual.is_null(),
            (Value::String(a), Value::String(b)) => same_text(a, b, case_exact),
            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
            (Value::Bool(a), Value::Bool(b)) => a == b,
            // Some servers store booleans as strings ("active": "true").
            (Value::String(a), Value::Bool(b)) => a.eq_ignore_ascii_case(&b.to_string()),
            _ => as_text(actual).is_some() && as_text(actual) == as_text(expected),
        },
        CompareOp::Ne => !compare(actual, CompareOp::Eq, expected, case_exact),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => match (as_text(actual), as_text(expected)) {
            (Some(a), Some(b)) => match op {
                CompareOp::Co => a.contains(&b),
                CompareOp::Sw => a.starts_with(&b),
                _ => a.ends_with(&b),
            },
            _ => false,
        },
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            let ordering = match (actual, expected) {
                (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
                _ => match (as_text(actual), as_text(expected)) {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                },
            };
            matches!(
                (ordering, op),
                (Some(Ordering::Greater), CompareOp::Gt | CompareOp::Ge)
                    | (Some(Ordering::Equal), CompareOp::Ge | CompareOp::Le)
                    | (Some(Ordering::Less), CompareOp::Lt | CompareOp::Le)
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"id": "7", "userName": "Alice@Corp.Example", "active": true, "externalId": "Ext-1",
               "emails": [{"value": "alice@corp.example", "type": "work"}],
               "name": {"givenName": "Alice"}})
    }

    fn check(filter: &str) -> bool {
        matches(&parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")), &user())
    }

    #[test]
    fn evaluates_the_rfc_operators() {
        assert!(check(r#"userName eq "alice@corp.example""#));
        assert!(check(r#"USERNAME Eq "ALICE@corp.example""#));
        assert!(!check(r#"externalId eq "ext-1""#));
        assert!(check(r#"externalId eq "Ext-1""#));
        assert!(check(r#"userName sw "alice" and name.givenName co "lic""#));
        assert!(check(r#"userName eq "x" or active eq true"#));
        assert!(check(r#"not (userName eq "x")"#));
        assert!(check(r#"emails[type eq "work" and value ew "example"]"#));
        assert!(check("name.givenName pr"));
        assert!(!check("title pr"));
        assert!(check(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "alice@corp.example""#));
        assert!(check(r#"id gt "6""#));
        let team = json!({"displayName": "Équipe Restreinte"});
        assert!(matches(&parse(r#"displayName eq "équipe restreinte""#).unwrap(), &team));
    }

    #[test]
    fn evaluates_membership_filters() {
        let group = json!({"id": "9", "members": [{"value": "7"}, {"value": "8"}]});
        let filter = parse(r#"id eq "9" and members[value eq "8"]"#).unwrap();
        assert!(matches(&filter, &group));
        let filter = parse(r#"id eq "9" and members[value eq "1"]"#).unwrap();
        assert!(!matches(&filter, &group));
        assert!(matches(&parse(r#"members.value eq "7""#).unwrap(), &group));
        assert!(filter.mentions("Members") && !filter.mentions("groups"));
        assert!(parse(r#"not (groups[value eq "9"])"#).unwrap().mentions("groups"));
    }

    #[test]
    fn keeps_escaped_quotes_inside_strings() {
        let filter = parse(r#"userName eq "x\" or userName pr \"@example.com""#).unwrap();
        assert_eq!(
            filter,
            Filter::Compare(
                AttrPath { schema: None, name: "userName".into(), sub: None },
                CompareOp::Eq,
                json!("x\" or userName pr \"@example.com")
            )
        );
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in ["userName", "userName eq", "userName zz \"a\"", "(userName eq \"a\"", "userName eq \"a", "a eq b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_patch_paths() {
        let path = parse_patch_path(r#"members[value eq "7"]"#).unwrap();
        assert_eq!(path.attr.name, "members");
        assert!(path.filter.is_some());
        let path = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(path.sub.as_deref(), Some("value"));
        assert_eq!(parse_patch_path("name.givenName").unwrap().attr.sub.as_deref(), Some("givenName"));
    }
}
