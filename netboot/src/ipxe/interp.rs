//! Executing a parsed iPXE script: variables, image downloads (`kernel`, `initrd`, `imgfetch`, `module`),
//! `imgargs`, `chain`, `goto`, `echo`, `boot`. Bounded: at most [`MAX_STEPS`] commands and [`MAX_CHAINS`]
//! chained scripts, so a looping script fails instead of hanging the machine.

use std::collections::HashMap;

use bytes::Bytes;
use futures::future::BoxFuture;
use url::Url;

use super::parse::{Line, Script, expand, parse};

pub const MAX_STEPS: usize = 10_000;
pub const MAX_CHAINS: usize = 8;

/// Downloads a URL for the interpreter (the firmware adds its own checks).
pub trait Fetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes, String>>;
}

/// Settings iPXE provides before any script runs.
#[derive(Clone, Debug)]
pub struct Builtins {
    pub uuid: String,
    pub mac: String,
    /// iPXE's name: `x86_64` or `arm64`.
    pub buildarch: String,
    pub platform: String,
}

impl Builtins {
    fn get(&self, name: &str) -> Option<String> {
        match name {
            "uuid" => Some(self.uuid.clone()),
            "mac" | "net0/mac" => Some(self.mac.clone()),
            "buildarch" => Some(self.buildarch.clone()),
            "platform" => Some(self.platform.clone()),
            _ => None,
        }
    }
}

/// A downloaded image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub url: String,
    pub bytes: Bytes,
    pub args: Vec<String>,
}

/// What `boot` hands to the loaded kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSelection {
    pub kernel: Image,
    pub initrds: Vec<Image>,
    /// `echo` output, in order.
    pub console: Vec<String>,
}

struct State<'a> {
    builtins: &'a Builtins,
    vars: HashMap<String, String>,
    kernel: Option<Image>,
    initrds: Vec<Image>,
    console: Vec<String>,
}

enum Flow {
    Next,
    Goto(String),
    Chain(Url, String),
    Boot,
}

/// Runs the script fetched from `script_url` until it boots; any failure is a message naming the line.
pub async fn run(
    script_url: &str,
    text: &str,
    builtins: &Builtins,
    fetcher: &dyn Fetcher,
) -> Result<BootSelection, String> {
    let mut base =
        Url::parse(script_url).map_err(|e| format!("boot URL {script_url:?} is not a URL: {e}"))?;
    let mut script = parse(text).map_err(|e| format!("{base}: {e}"))?;
    let mut state = State {
        builtins,
        vars: HashMap::new(),
        kernel: None,
        initrds: vec![],
        console: vec![],
    };
    let (mut pc, mut steps, mut chains) = (0usize, 0usize, 0usize);
    loop {
        let Some(line) = script.lines.get(pc) else {
            return Err(format!("{base}: script ended without booting"));
        };
        steps += 1;
        if steps > MAX_STEPS {
            return Err(format!(
                "{base}: more than {MAX_STEPS} commands executed; giving up (loop?)"
            ));
        }
        let flow = state
            .step(&base, line, fetcher)
            .await
            .map_err(|e| format!("{base} line {} ({}): {e}", line.number, line.command))?;
        pc += 1;
        match flow {
            Flow::Next => {}
            Flow::Goto(label) => {
                pc = find_label(&script, &label)
                    .ok_or_else(|| format!("{base} line {}: no label {label:?}", line.number))?
            }
            Flow::Chain(url, text) => {
                chains += 1;
                if chains > MAX_CHAINS {
                    return Err(format!("more than {MAX_CHAINS} chained scripts; giving up"));
                }
                script = parse(&text).map_err(|e| format!("{url}: {e}"))?;
                base = url;
                pc = 0;
            }
            Flow::Boot => break,
        }
    }
    let kernel = state
        .kernel
        .ok_or_else(|| format!("{base}: boot: no kernel image loaded"))?;
    Ok(BootSelection {
        kernel,
        initrds: state.initrds,
        console: state.console,
    })
}

fn find_label(script: &Script, label: &str) -> Option<usize> {
    script
        .labels
        .iter()
        .find(|(l, _)| l == label)
        .map(|(_, index)| *index)
}

/// Splits leading `--name x` / `--flag` options off image command arguments.
fn image_options(args: &[String]) -> (Option<String>, &[String]) {
    let mut name = None;
    let mut index = 0;
    while let Some(arg) = args.get(index).filter(|a| a.starts_with("--")) {
        if let Some(value) = arg.strip_prefix("--name=") {
            name = Some(value.to_string());
        } else if arg == "--name" || arg == "-n" {
            index += 1;
            name = args.get(index).cloned();
        }
        index += 1;
    }
    (name, &args[index.min(args.len())..])
}

impl State<'_> {
    fn expand(&self, text: &str) -> String {
        expand(text, |name| {
            self.vars
                .get(name)
                .cloned()
                .or_else(|| self.builtins.get(name))
        })
    }

    async fn step(
        &mut self,
        base: &Url,
        line: &Line,
        fetcher: &dyn Fetcher,
    ) -> Result<Flow, String> {
        let args: Vec<String> = line.args.iter().map(|a| self.expand(a)).collect();
        match line.command.as_str() {
            "set" => {
                let (name, value) = line
                    .rest
                    .split_once(char::is_whitespace)
                    .unwrap_or((line.rest.as_str(), ""));
                if name.is_empty() {
                    return Err("set needs a variable name".into());
                }
                let value = self.expand(value.trim());
                self.vars.insert(name.to_string(), value);
            }
            "clear" => {
                let name = args.first().ok_or("clear needs a variable name")?;
                self.vars.remove(name);
            }
            "echo" => {
                let text = line
                    .rest
                    .strip_prefix("-n")
                    .map(str::trim_start)
                    .unwrap_or(&line.rest);
                self.console.push(self.expand(text));
            }
            "kernel" | "imgselect" | "initrd" | "imgfetch" | "module" => {
                self.load(base, &line.command, &args, fetcher).await?
            }
            "imgargs" => {
                let (target, rest) = args.split_first().ok_or("imgargs needs an image name")?;
                let image = self
                    .find_image(target)
                    .ok_or_else(|| format!("no image named {target:?}"))?;
                image.args = rest.to_vec();
            }
            "chain" => return self.chain(base, &args, fetcher).await,
            "goto" => {
                return Ok(Flow::Goto(
                    args.first().ok_or("goto needs a label")?.clone(),
                ));
            }
            "boot" => {
                if let Some(name) = args.first() {
                    self.find_image(name)
                        .ok_or_else(|| format!("no image named {name:?}"))?;
                }
                return Ok(Flow::Boot);
            }
            "exit" => return Err("script exited instead of booting".into()),
            "dhcp" | "ifopen" | "ifconf" | "sleep" | "prompt" => {}
            other => return Err(format!("unknown command {other:?}")),
        }
        Ok(Flow::Next)
    }

    fn find_image(&mut self, name: &str) -> Option<&mut Image> {
        self.kernel
            .iter_mut()
            .chain(self.initrds.iter_mut())
            .find(|i| i.name == name)
    }

    async fn load(
        &mut self,
        base: &Url,
        command: &str,
        args: &[String],
        fetcher: &dyn Fetcher,
    ) -> Result<(), String> {
        let (name, rest) = image_options(args);
        let (target, image_args) = rest
            .split_first()
            .ok_or_else(|| format!("{command} needs a URL"))?;
        let url = base
            .join(target)
            .map_err(|e| format!("{target:?} is not a URL: {e}"))?;
        let bytes = fetcher.fetch(url.as_str()).await?;
        let default_name = url
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .unwrap_or_default();
        let image = Image {
            name: name.unwrap_or(default_name),
            url: url.to_string(),
            bytes,
            args: image_args.to_vec(),
        };
        if matches!(command, "kernel" | "imgselect") {
            self.kernel = Some(image);
        } else {
            self.initrds.push(image);
        }
        Ok(())
    }

    async fn chain(
        &mut self,
        base: &Url,
        args: &[String],
        fetcher: &dyn Fetcher,
    ) -> Result<Flow, String> {
        let (_, rest) = image_options(args);
        let (target, image_args) = rest.split_first().ok_or("chain needs a URL")?;
        let url = base
            .join(target)
            .map_err(|e| format!("{target:?} is not a URL: {e}"))?;
        let bytes = fetcher.fetch(url.as_str()).await?;
        if bytes.starts_with(b"#!ipxe") {
            return Ok(Flow::Chain(
                url,
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
        // Anything else is an executable image: select it and boot it.
        self.kernel = Some(Image {
            name: "chained".into(),
            url: url.to_string(),
            bytes,
            args: image_args.to_vec(),
        });
        Ok(Flow::Boot)
    }
}

#[cfg(test)]
mod tests;
