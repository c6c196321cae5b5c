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

/// One line per provider and user: outcome, or the error's kind and message.
pub fn table(document: &Value, colour: bool) -> String {
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
