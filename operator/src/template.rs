//! Go text/templates (gtmpl) as upstream uses them: DNS records and the discovery ignition.

use gtmpl::Value;

/// What Go templates print for a missing map key; upstream renders with `missingkey=error`.
const NO_VALUE: &str = "<no value>";

/// How long parsing a template may take at startup before it is declared broken.
const PARSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks that the template parses, once, at startup. The Go-template parser (gtmpl) loops forever
/// on some unterminated actions (`{{ .Name ` at the end of the text), so the parse runs on its own
/// thread with a deadline; a template that passes here parses the same way at every render.
/// `what` names the template in the error.
pub fn validate(template: &str, what: &str) -> Result<(), String> {
    let text = template.to_owned();
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut parsed = gtmpl::Template::default();
        let _ = done.send(parsed.parse(&text).map_err(|e| e.to_string()));
    });
    match outcome.recv_timeout(PARSE_TIMEOUT) {
        Ok(result) => result.map_err(|e| format!("{what} does not parse: {e}")),
        Err(_) => Err(format!("{what} does not parse (unterminated action?)")),
    }
}

/// Renders a template that passed [`validate`]; a field the data does not have is an error.
pub fn render(template: &str, data: Value, what: &str) -> Result<String, String> {
    let rendered = gtmpl::template(template, data).map_err(|e| format!("rendering {what}: {e}"))?;
    if rendered.contains(NO_VALUE) {
        return Err(format!("{what} uses a field the data does not have"));
    }
    Ok(rendered)
}
