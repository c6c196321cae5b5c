//! Where the restriction ledger lives (config `state`): `sqlite:PATH` on one machine, by default a
//! file under the user's data folder; or `postgres://USER@HOST:PORT/DB` when SOAR workers span
//! several machines (PostgreSQL then also carries the change lock and the rate limit). The
//! password is never in the config file: it comes from the caller, `state_password_env`,
//! `PGPASSWORD` or the password file libpq reads (`PGPASSFILE`, else `~/.pgpass`).

use crate::config::Environment;
use crate::files;
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use url::Url;

/// The ledger's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSpec {
    Sqlite(PathBuf),
    Postgres(PostgresSpec),
}

/// A PostgreSQL server and database; the password is found when the ledger is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostgresSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    /// The environment variable `state_password_env` names, if any.
    pub password_env: Option<String>,
}

impl PostgresSpec {
    /// `postgres://user@host:port/db`, never with a password: for messages.
    pub fn shown(&self) -> String {
        format!("postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// The password: the caller's, else `state_password_env`'s variable, else `PGPASSWORD`, else
    /// the first matching line of the password file (`host:port:database:user:password`, `*`
    /// matching anything, `\` escaping `:` and `\`), read only when owner-only as libpq requires.
    pub fn password(&self, given: Option<&Secret>, env: &dyn Environment) -> Result<Option<Secret>, String> {
        if let Some(given) = given {
            return Ok(Some(given.clone()));
        }
        if let Some(name) = &self.password_env {
            return env.var(name).filter(|value| !value.is_empty()).map(|value| Some(Secret::new(value))).ok_or_else(|| {
                "state_password_env names an environment variable that is not set; export the PostgreSQL password in it"
                    .to_string()
            });
        }
        if let Some(password) = env.var("PGPASSWORD").filter(|value| !value.is_empty()) {
            return Ok(Some(Secret::new(password)));
        }
        let file = match env.var("PGPASSFILE") {
            Some(path) => PathBuf::from(path),
            None => match env.var("HOME") {
                Some(home) => Path::new(&home).join(".pgpass"),
                None => return Ok(None),
            },
        };
        let Ok((text, metadata)) = files::read_text(&file, 1024 * 1024) else { return Ok(None) };
        if files::shared_with_others(&metadata) {
            return Err(format!(
                "the password file {} can be read by other users; libpq ignores it then, and so does this host: chmod 600 it",
                file.display()
            ));
        }
        Ok(text.lines().find_map(|line| self.pgpass_match(line)).map(Secret::new))
    }

    fn pgpass_match(&self, line: &str) -> Option<String> {
        if line.starts_with('#') {
            return None;
        }
        let fields = split_pgpass(line);
        let [host, port, dbname, user, password] = fields.as_slice() else { return None };
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        (matches(host, &self.host)
            && matches(port, &self.port.to_string())
            && matches(dbname, &self.dbname)
            && matches(user, &self.user))
        .then(|| password.clone())
    }
}

/// The fields of a password-file line, `\` escaping `:` and `\`.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().expect("a field").extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("a field").push(c),
        }
    }
    fields
}

/// The default ledger: `$XDG_DATA_HOME/soar-host/restrictions.sqlite3`, else under
/// `~/.local/share` (the data folder, not the cache: the ledger is not disposable).
pub fn default_sqlite(env: &dyn Environment) -> Option<PathBuf> {
    let base = env
        .var("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.var("HOME").filter(|v| !v.is_empty()).map(|home| Path::new(&home).join(".local/share")))?;
    Some(base.join("soar-host").join("restrictions.sqlite3"))
}

/// `state` as written: `sqlite:PATH` (relative to `folder`) or a PostgreSQL URL without a
/// password. The error names what is wrong, never the value (a URL may hold a password).
pub fn parse(text: &str, folder: &Path, password_env: Option<String>) -> Result<StateSpec, String> {
    if let Some(path) = text.strip_prefix("sqlite:") {
        if path.trim().is_empty() {
            return Err("state \"sqlite:\" names no file; give sqlite:PATH".into());
        }
        if password_env.is_some() {
            return Err("state_password_env is for a PostgreSQL state; remove it for sqlite:".into());
        }
        return Ok(StateSpec::Sqlite(folder.join(path)));
    }
    let url = Url::parse(text).map_err(|_| {
        "state is neither sqlite:PATH nor postgres://USER@HOST:PORT/DB (its value is not shown: it may hold a password)"
            .to_string()
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "state has the scheme '{}'; give sqlite:PATH or postgres://USER@HOST:PORT/DB",
            url.scheme().escape_debug()
        ));
    }
    if url.password().is_some() {
        return Err("state holds a password, which a config file must not: give it in state_password_env, \
                    PGPASSWORD or ~/.pgpass (the value is not shown)"
            .into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("state has a query or a fragment; give postgres://USER@HOST:PORT/DB only".into());
    }
    let host = url.host_str().filter(|host| !host.is_empty()).ok_or("state names no PostgreSQL host")?;
    if url.username().is_empty() {
        return Err("state names no PostgreSQL user; give postgres://USER@HOST:PORT/DB".into());
    }
    let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy().into_owned();
    let dbname = url.path().trim_start_matches('/');
    let dbname = if dbname.is_empty() {
        user.clone()
    } else {
        percent_encoding::percent_decode_str(dbname).decode_utf8_lossy().into_owned()
    };
    Ok(StateSpec::Postgres(PostgresSpec {
        host: host.trim_start_matches('[').trim_end_matches(']').to_string(),
        port: url.port().unwrap_or(5432),
        user,
        dbname,
        password_env,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn sqlite_and_postgres_are_read_and_anything_else_refused_without_its_value() {
        let folder = Path::new("/etc/soar");
        assert_eq!(parse("sqlite:ledger.db", folder, None), Ok(StateSpec::Sqlite("/etc/soar/ledger.db".into())));
        let StateSpec::Postgres(pg) = parse("postgres://soar@db.corp.example:6543/restrictions", folder, None).unwrap()
        else {
            panic!("postgres")
        };
        assert_eq!(
            (pg.host.as_str(), pg.port, pg.user.as_str(), pg.dbname.as_str()),
            ("db.corp.example", 6543, "soar", "restrictions")
        );
        assert_eq!(pg.shown(), "postgres://soar@db.corp.example:6543/restrictions");
        for (text, says) in [
            ("postgres://soar:S3CRET@db/x", "holds a password"),
            ("mysql://soar@db/x", "scheme 'mysql'"),
            ("S3CRET-token-pasted", "neither sqlite"),
            ("postgres://db/x", "no PostgreSQL user"),
            ("postgres://soar@db/x?password=S3CRET", "query"),
            ("sqlite:", "names no file"),
        ] {
            let error = parse(text, folder, None).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
            assert!(!error.contains("S3CRET"), "{error}");
        }
    }

    #[test]
    fn the_password_comes_from_the_caller_the_environment_or_the_password_file() {
        let StateSpec::Postgres(pg) = parse("postgres://soar@db:5432/ledger", Path::new("."), None).unwrap() else {
            panic!()
        };
        let given = Secret::new("from-the-caller");
        let from_caller = pg.password(Some(&given), &env(vec![("PGPASSWORD", "x".into())])).unwrap();
        assert_eq!(from_caller.unwrap().expose(), "from-the-caller");
        let from_env = pg.password(None, &env(vec![("PGPASSWORD", "pw-env".into())])).unwrap();
        assert_eq!(from_env.unwrap().expose(), "pw-env");
        let dir = std::env::temp_dir().join(format!("soar-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pgpass");
        std::fs::write(&file, "# comment\nother:5432:*:soar:no\ndb:*:ledger:soar:pa\\:ss\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let passfile = || env(vec![("PGPASSFILE", file.display().to_string())]);
        assert_eq!(pg.password(None, &passfile()).unwrap().unwrap().expose(), "pa:ss");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(pg.password(None, &passfile()).unwrap_err().contains("chmod 600"));
        let _ = std::fs::remove_dir_all(&dir);
        let StateSpec::Postgres(named) =
            parse("postgres://soar@db/ledger", Path::new("."), Some("LEDGER_PW".into())).unwrap()
        else {
            panic!()
        };
        assert!(named.password(None, &env(vec![])).unwrap_err().contains("state_password_env"));
    }
}
