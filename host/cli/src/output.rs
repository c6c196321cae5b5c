//! What `soar-host` prints on stdout: the JSON document (for machines) or a table (for people).

use crate::args::OutputFormat;
use serde_json::Value;
use soar_host::action::Report;
use soar_host::text::printable;
use std::io::{IsTerminal, Write};

/// Prints the report in the chosen format; returns its exit code.
pub fn print_report(stdout: &mut dyn Write, format: OutputFormat, report: &Report) -> i32 {
    print_document(stdout, format, &report.document);
    report.exit_code
}

pub fn print_document(stdout: &mut dyn Write, format: OutputFormat, document: &Value) {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(document).expect("JSON serialises"),
        OutputFormat::Table => table(document, std::io::stdout().is_terminal()),
    };
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// One line per provider and user: outcome, or the error's kind and message; for the
/// `restrictions` report, one line per record.
pub fn table(document: &Value, colour: bool) -> String {
    if document["action"] == "restrictions" && document.get("restrictions").is_some() {
        return restrictions_table(document);
    }
    let paint = |text: &str, code: &str| if colour { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let status = document["status"].as_str().unwrap_or("?");
    let mut lines = vec![format!(
        "{} {}  (http requests: {})",
        document["action"].as_str().unwrap_or("soar-host"),
        paint(
            status,
            if status == "success" {
                "32"
            } else if status == "partial" {
                "33"
            } else {
                "31"
            }
        ),
        document["http_requests"].as_u64().unwrap_or(0)
    )];
    let describe_error = |error: &Value| {
        format!("{}: {}", error["kind"].as_str().unwrap_or("?"), error["message"].as_str().unwrap_or(""))
    };
    if document["providers"].as_array().is_none() {
        if let Some(error) = document.get("error") {
            lines.push(paint(&printable(&describe_error(error)), "31"));
        }
    }
    let mut rows: Vec<[String; 4]> = vec![["PROVIDER".into(), "USER".into(), "OUTCOME".into(), "DETAIL".into()]];
    for provider in document["providers"].as_array().into_iter().flatten() {
        let idp = provider["idp"].as_str().unwrap_or("?").to_string();
        let group = &provider["group"];
        let group_text = group["display_name"].as_str().or(group["id"].as_str()).unwrap_or("").to_string();
        if let Some(error) = provider["error"].as_object().map(|_| &provider["error"]) {
            rows.push([idp.clone(), "-".into(), "error".into(), describe_error(error)]);
        } else if let Some(outcome) = provider["outcome"].as_str() {
            rows.push([idp.clone(), "-".into(), outcome.into(), format!("group {group_text}")]);
        }
        for user in provider["users"].as_array().into_iter().flatten() {
            let name = user["user"].as_str().unwrap_or("?").to_string();
            match (user["outcome"].as_str(), user["error"].as_object()) {
                (_, Some(_)) => rows.push([idp.clone(), name, "error".into(), describe_error(&user["error"])]),
                (Some(outcome), None) => {
                    let id = user["user_id"].as_str().map(|id| format!("user id {id}")).unwrap_or_default();
                    rows.push([idp.clone(), name, outcome.into(), id]);
                }
                (None, None) => rows.push([idp.clone(), name, "-".into(), String::new()]),
            }
        }
    }
    // Ids, names and messages come from servers: nothing in them may move the cursor, colour
    // the terminal, break a line or turn text around.
    for cell in rows.iter_mut().flatten() {
        *cell = printable(cell).into_owned();
    }
    if rows.len() > 1 {
        let widths: Vec<usize> = (0..3).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (index, row) in rows.iter().enumerate() {
            let outcome = format!("{:<w$}", row[2], w = widths[2]);
            let outcome = match row[2].as_str() {
                _ if index == 0 => outcome,
                "error" => paint(&outcome, "31"),
                "-" => outcome,
                _ => paint(&outcome, "32"),
            };
            lines.push(
                format!("{:<w0$}  {:<w1$}  {outcome}  {}", row[0], row[1], row[3], w0 = widths[0], w1 = widths[1])
                    .trim_end()
                    .to_string(),
            );
        }
    }
    lines.join("\n")
}

/// The `restrictions` report for people: who, since when, until when, why.
fn restrictions_table(document: &Value) -> String {
    let records = document["restrictions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let text = |value: &Value| value.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
    let mut rows: Vec<[String; 6]> =
        vec![["IDP".into(), "USER".into(), "STATE".into(), "RESTRICTED AT".into(), "UNTIL".into(), "REASON".into()]];
    for record in records {
        let until = match (record["lifted_at"].as_str(), record["expires_at"].as_str()) {
            (Some(lifted), _) => format!("lifted {lifted} ({})", text(&record["lifted_by"])),
            (None, Some(expiry)) => expiry.to_string(),
            (None, None) => "until lifted".into(),
        };
        rows.push([
            text(&record["idp"]),
            text(&record["user"]),
            text(&record["state"]),
            text(&record["restricted_at"]),
            until,
            text(&record["reason"]),
        ]);
    }
    for cell in rows.iter_mut().flatten() {
        *cell = printable(cell).into_owned();
    }
    let widths: Vec<usize> = (0..5).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut lines =
        vec![format!("restrictions  ({} record{})", records.len(), if records.len() == 1 { "" } else { "s" })];
    for row in &rows {
        let mut line = String::new();
        for (column, width) in widths.iter().enumerate() {
            line.push_str(&format!("{:<width$}  ", row[column]));
        }
        line.push_str(&row[5]);
        lines.push(line.trim_end().to_string());
    }
    lines.join("\n")
}
