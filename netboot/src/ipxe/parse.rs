//! Reading iPXE scripts the way iPXE does: a `#!ipxe` first line, one command line per line (a trailing `\`
//! continues it), `:label` lines, and words split on whitespace. Operators (`||`, `&&`, `;`) and `#` comments
//! are words found at run time, and `${…}` is expanded per word just before a command runs (iPXE's `system()`).

/// One command line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based number of the line the command starts on.
    pub number: usize,
    /// The command line as written (continuations joined), for error messages.
    pub text: String,
    /// Whitespace-separated words, not yet expanded.
    pub words: Vec<String>,
}

/// A parsed script: command lines in order, and the index of the command line each label precedes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub lines: Vec<Line>,
    pub labels: Vec<(String, usize)>,
}

impl Script {
    /// Where `goto label` continues; as in iPXE the first of duplicate labels wins.
    pub fn label(&self, label: &str) -> Option<usize> {
        self.labels
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, index)| *index)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an iPXE script: the first line is {0:?}, not #!ipxe")]
    MissingMagic(String),
}

pub fn parse(text: &str) -> Result<Script, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l.trim()).unwrap_or_default();
    // gPXE's magic is still accepted by iPXE.
    if !(first.starts_with("#!ipxe") || first.starts_with("#!gpxe")) {
        return Err(ParseError::MissingMagic(first.chars().take(40).collect()));
    }
    let mut script = Script::default();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in lines {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (number, mut text) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(head) = raw.strip_suffix('\\') {
            text.push_str(head);
            pending = Some((number, text));
            continue;
        }
        text.push_str(raw);
        push_line(&mut script, number, &text);
    }
    if let Some((number, text)) = pending {
        push_line(&mut script, number, &text);
    }
    Ok(script)
}

fn push_line(script: &mut Script, number: usize, text: &str) {
    let trimmed = text.trim();
    if let Some(label) = trimmed.strip_prefix(':') {
        script
            .labels
            .push((label.trim().to_string(), script.lines.len()));
        return;
    }
    let words: Vec<String> = trimmed.split_whitespace().map(str::to_string).collect();
    // Blank and comment-only lines execute nothing; skipping them keeps step counts meaningful.
    if words.first().is_none_or(|w| w.starts_with('#')) {
        return;
    }
    script.lines.push(Line {
        number,
        text: trimmed.to_string(),
        words,
    });
}

/// Most `${…}` substitutions in one word: a setting whose value names itself would otherwise expand forever.
const MAX_EXPANSIONS: usize = 256;

/// Expands `${name}` and `${name:type}` (types `string`, `uristring`, `hex`, `hexhyp`, `hexraw`) innermost
/// first, as iPXE does; unset settings expand to nothing. An unterminated `${` is kept literally.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = text.to_string();
    for _ in 0..MAX_EXPANSIONS {
        // The innermost reference: the last `${` before the first `}` that follows one.
        let mut start = None;
        let mut end = None;
        let bytes = out.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'$' && bytes.get(i + 1) == Some(&b'{') {
                start = Some(i);
            } else if bytes[i] == b'}' && start.is_some() {
                end = Some(i);
                break;
            }
        }
        let (Some(start), Some(end)) = (start, end) else {
            break;
        };
        let spec = &out[start + 2..end];
        let (name, kind) = spec.split_once(':').unwrap_or((spec, "string"));
        let value = format_setting(&lookup(name).unwrap_or_default(), kind);
        out.replace_range(start..=end, &value);
    }
    out
}

fn format_setting(value: &str, kind: &str) -> String {
    let hex = |separator: &str| {
        setting_bytes(value)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(separator)
    };
    match kind {
        "uristring" => uri_escape(value),
        "hex" => hex(":"),
        "hexhyp" => hex("-"),
        "hexraw" => hex(""),
        _ => value.to_string(),
    }
}

/// The raw bytes of a setting: a MAC-style `xx:xx:…` value is its octets (as iPXE stores a MAC), anything
/// else its text.
fn setting_bytes(value: &str) -> Vec<u8> {
    let octets: Option<Vec<u8>> = value
        .split(':')
        .map(|o| {
            (o.len() == 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect();
    match octets {
        Some(octets) if value.contains(':') => octets,
        _ => value.as_bytes().to_vec(),
    }
}

fn uri_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn parses_commands_comments_labels_and_continuations() {
        let script = parse("#!ipxe\n\n# comment\n:start\nset   base http://x/y  \nkernel ${base}/k a=b \\\n  c\n  initrd --name initramfs ${base}/i || goto start\n:start\nboot\n").unwrap();
        let commands: Vec<_> = script.lines.iter().map(|l| l.words[0].as_str()).collect();
        assert_eq!(commands, ["set", "kernel", "initrd", "boot"]);
        assert_eq!(script.lines[0].words, ["set", "base", "http://x/y"]);
        assert_eq!(script.lines[1].words, ["kernel", "${base}/k", "a=b", "c"]);
        assert_eq!(script.lines[1].number, 6);
        assert_eq!(script.lines[2].number, 8);
        assert_eq!(
            script.lines[2].text,
            "initrd --name initramfs ${base}/i || goto start"
        );
        assert_eq!(script.label("start"), Some(0), "the first duplicate wins");
        assert_eq!(script.label("nowhere"), None);
    }

    #[test]
    fn rejects_non_scripts() {
        assert_eq!(
            parse("<html>404</html>"),
            Err(ParseError::MissingMagic("<html>404</html>".into()))
        );
        assert_eq!(parse(""), Err(ParseError::MissingMagic(String::new())));
        assert!(parse("\u{feff}#!ipxe\r\nboot\r\n").is_ok());
        assert!(parse("#!gpxe\nboot\n").is_ok());
    }

    #[test]
    fn expands_variables() {
        let vars = |name: &str| match name {
            "uuid" => Some("ABC-1".to_string()),
            "path" => Some("a b/c".to_string()),
            "net0/mac" => Some("02:00:0a:0b:0c:0d".to_string()),
            "which" => Some("uuid".to_string()),
            "self" => Some("${self}".to_string()),
            _ => None,
        };
        assert_eq!(
            expand("x=${uuid}/${missing}/${path:uristring}", vars),
            "x=ABC-1//a%20b%2Fc"
        );
        assert_eq!(expand("${uuid:hex}", vars), "41:42:43:2d:31");
        assert_eq!(expand("${net0/mac:hexhyp}", vars), "02-00-0a-0b-0c-0d");
        assert_eq!(expand("${net0/mac:hexraw}", vars), "02000a0b0c0d");
        assert_eq!(expand("${${which}}", vars), "ABC-1", "innermost first");
        assert_eq!(expand("tail ${unterminated", vars), "tail ${unterminated");
        assert_eq!(expand("no vars", vars), "no vars");
        assert_eq!(expand("${self}", vars), "${self}", "bounded");
    }
}
