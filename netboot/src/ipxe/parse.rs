//! Parsing the iPXE script subset: `#!ipxe`, comments, labels, and commands split into words.

/// One command line of a script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number in the script.
    pub number: usize,
    pub command: String,
    /// Arguments, split on whitespace; not yet variable-expanded.
    pub args: Vec<String>,
    /// The text after the command word, for `set` and `echo`, which keep their spacing.
    pub rest: String,
}

/// A parsed script: commands in order, and the index each label points at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Script {
    pub lines: Vec<Line>,
    pub labels: Vec<(String, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an iPXE script: the first line is {0:?}, not #!ipxe")]
    MissingMagic(String),
    #[error("line {0}: operators `||` and `&&` are not supported")]
    Operators(usize),
    #[error("line {0}: duplicate label {1:?}")]
    DuplicateLabel(usize, String),
}

pub fn parse(text: &str) -> Result<Script, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let first = lines.next().map(|(_, l)| l.trim()).unwrap_or_default();
    if !first.starts_with("#!ipxe") {
        return Err(ParseError::MissingMagic(first.chars().take(40).collect()));
    }
    let mut script = Script::default();
    for (index, raw) in lines {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(label) = line.strip_prefix(':') {
            let label = label.trim().to_string();
            if script.labels.iter().any(|(l, _)| *l == label) {
                return Err(ParseError::DuplicateLabel(number, label));
            }
            script.labels.push((label, script.lines.len()));
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.iter().any(|w| *w == "||" || *w == "&&") {
            return Err(ParseError::Operators(number));
        }
        let command = words[0].to_string();
        let rest = line[command.len()..].trim_start().to_string();
        script.lines.push(Line {
            number,
            command,
            args: words[1..].iter().map(|w| w.to_string()).collect(),
            rest,
        });
    }
    Ok(script)
}

/// Expands `${name}` and `${name:type}` (types `string`, `uristring`, `hex`); unset variables expand to
/// nothing, as in iPXE. An unterminated `${` is kept literally.
pub fn expand(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let spec = &after[..end];
        let (name, kind) = spec.split_once(':').unwrap_or((spec, "string"));
        let value = lookup(name).unwrap_or_default();
        match kind {
            "uristring" => out.push_str(&uri_escape(&value)),
            "hex" => out.push_str(
                &value
                    .bytes()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            _ => out.push_str(&value),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
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
    fn parses_commands_comments_and_labels() {
        let script = parse("#!ipxe\n\n# comment\n:start\nset   base http://x/y  \nkernel ${base}/k a=b  c\n  initrd --name initramfs ${base}/i\nboot\n").unwrap();
        let commands: Vec<_> = script.lines.iter().map(|l| l.command.as_str()).collect();
        assert_eq!(commands, ["set", "kernel", "initrd", "boot"]);
        assert_eq!(script.lines[0].rest, "base http://x/y");
        assert_eq!(script.lines[1].args, ["${base}/k", "a=b", "c"]);
        assert_eq!(script.lines[1].number, 6);
        assert_eq!(script.labels, vec![("start".to_string(), 0)]);
    }

    #[test]
    fn rejects_non_scripts_and_unsupported_syntax() {
        assert_eq!(
            parse("<html>404</html>"),
            Err(ParseError::MissingMagic("<html>404</html>".into()))
        );
        assert_eq!(parse(""), Err(ParseError::MissingMagic(String::new())));
        assert_eq!(
            parse("#!ipxe\nchain x || goto fail\n"),
            Err(ParseError::Operators(2))
        );
        assert_eq!(
            parse("#!ipxe\n:a\n:a\n"),
            Err(ParseError::DuplicateLabel(3, "a".into()))
        );
        assert!(parse("\u{feff}#!ipxe\nboot\n").is_ok());
    }

    #[test]
    fn expands_variables() {
        let vars = |name: &str| match name {
            "uuid" => Some("ABC-1".to_string()),
            "path" => Some("a b/c".to_string()),
            _ => None,
        };
        assert_eq!(
            expand("x=${uuid}/${missing}/${path:uristring}", vars),
            "x=ABC-1//a%20b%2Fc"
        );
        assert_eq!(expand("${uuid:hex}", vars), "41:42:43:2d:31");
        assert_eq!(expand("tail ${unterminated", vars), "tail ${unterminated");
        assert_eq!(expand("no vars", vars), "no vars");
    }
}
