//! Executing a parsed iPXE script with iPXE's semantics (<https://ipxe.org/cmd>): settings (`set`, `clear`,
//! `isset`, `iseq`), images (`kernel`/`imgselect`, `initrd`/`imgfetch`/`module`, `imgargs`, `imgfree`),
//! `chain`/`imgexec` (scripts and binaries, `--replace`), `goto`, `echo`, `exit`, `boot`, and the `||`, `&&`,
//! `;` operators. A failing command ends the script unless an operator handles it, as in iPXE. A command the
//! simulated firmware cannot run ends the boot with an error naming the line. Bounded: at most [`MAX_STEPS`]
//! commands and [`MAX_CHAINS`] chained scripts, so a looping script fails instead of hanging the machine.

use std::collections::HashMap;

use bytes::Bytes;
use futures::future::BoxFuture;
use url::Url;

use super::parse::{Line, Script, expand, parse};

pub const MAX_STEPS: usize = 10_000;
pub const MAX_CHAINS: usize = 8;

/// Downloads a URL for the interpreter (the firmware adds its own checks).
pub trait Fetcher: Send + Sync {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Download, String>>;
}

/// A fetched body and its digest (hashed once: real kernels are tens of MiB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Download {
    pub bytes: Bytes,
    /// `sha256:<hex>` of `bytes`.
    pub sha256: String,
}

impl Download {
    pub fn new(bytes: Bytes) -> Self {
        let sha256 = boot_image::sha256_digest(&bytes);
        Download { bytes, sha256 }
    }
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
            "mac" | "net0/mac" | "netX/mac" => Some(self.mac.clone()),
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
    /// `sha256:<hex>` of `bytes`.
    pub sha256: String,
    pub args: Vec<String>,
}

/// What `boot` hands over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootSelection {
    pub kernel: Image,
    pub initrds: Vec<Image>,
    /// The selected image is a binary run by `chain` (an EFI application such as a UKI), not a `kernel`.
    pub chained: bool,
    /// `echo` output, in order.
    pub console: Vec<String>,
}

/// Why a command did not succeed.
enum Stop {
    /// The command failed (status ≠ 0): `||` may handle it, otherwise the script ends with it.
    Failed(String),
    /// The firmware cannot go on (unsupported command, limits): nothing handles it.
    Fatal(String),
}

/// What a successful command asks of the script.
enum Flow {
    Next,
    Jump(usize),
    Boot,
    Exit(i64),
    /// A `chain --replace`d script ended without booting.
    Finished,
}

/// How a script ended.
enum End {
    Boot,
    Exit(i64),
    Finished,
}

struct Machine<'a> {
    builtins: &'a Builtins,
    fetcher: &'a dyn Fetcher,
    vars: HashMap<String, String>,
    kernel: Option<Image>,
    initrds: Vec<Image>,
    chained: bool,
    console: Vec<String>,
    steps: usize,
    chains: usize,
}

/// Runs the script fetched from `script_url` until it boots; any failure is a message naming the line.
pub async fn run(
    script_url: &str,
    text: &str,
    builtins: &Builtins,
    fetcher: &dyn Fetcher,
) -> Result<BootSelection, String> {
    let base =
        Url::parse(script_url).map_err(|e| format!("boot URL {script_url:?} is not a URL: {e}"))?;
    let mut machine = Machine {
        builtins,
        fetcher,
        vars: HashMap::new(),
        kernel: None,
        initrds: vec![],
        chained: false,
        console: vec![],
        steps: 0,
        chains: 0,
    };
    let end = machine
        .run_script(base.clone(), text.to_string())
        .await
        .map_err(|stop| match stop {
            Stop::Failed(m) | Stop::Fatal(m) => m,
        })?;
    match end {
        End::Boot => {}
        End::Exit(code) => {
            return Err(format!(
                "{base}: script exited (status {code}) instead of booting"
            ));
        }
        End::Finished => return Err(format!("{base}: script ended without booting")),
    }
    let kernel = machine
        .kernel
        .ok_or_else(|| format!("{base}: boot: no kernel image loaded"))?;
    Ok(BootSelection {
        kernel,
        initrds: machine.initrds,
        chained: machine.chained,
        console: machine.console,
    })
}

/// The words of one command up to its terminator, and what decides whether the next one runs.
enum Next {
    Or,
    And,
    Always,
}

fn terminator(words: &[String]) -> (usize, Option<Next>) {
    for (i, word) in words.iter().enumerate() {
        match word.as_str() {
            w if w.starts_with('#') => return (i, None),
            "||" => return (i, Some(Next::Or)),
            "&&" => return (i, Some(Next::And)),
            ";" => return (i, Some(Next::Always)),
            _ => {}
        }
    }
    (words.len(), None)
}

/// Options of the image commands: `--name`/`-n NAME`, `--timeout`/`-t MS`, `--autofree`/`-a`, `--replace`/`-r`.
#[derive(Default)]
struct ImageOptions {
    name: Option<String>,
    replace: bool,
}

fn image_options(args: &[String]) -> Result<(ImageOptions, &[String]), Stop> {
    let mut options = ImageOptions::default();
    let mut index = 0;
    while let Some(arg) = args
        .get(index)
        .filter(|a| a.starts_with('-') && a.len() > 1)
    {
        let value = |index: usize| {
            args.get(index + 1)
                .cloned()
                .ok_or_else(|| Stop::Failed(format!("option {arg} needs a value")))
        };
        match arg.as_str() {
            "--name" | "-n" => {
                options.name = Some(value(index)?);
                index += 1;
            }
            "--timeout" | "-t" => {
                value(index)?;
                index += 1;
            }
            "--autofree" | "-a" => {}
            "--replace" | "-r" => options.replace = true,
            other if other.starts_with("--name=") => {
                options.name = other.strip_prefix("--name=").map(str::to_string)
            }
            other if other.starts_with("--timeout=") => {}
            other => return Err(Stop::Failed(format!("invalid option {other:?}"))),
        }
        index += 1;
    }
    Ok((options, &args[index.min(args.len())..]))
}

fn usage(command: &str, form: &str) -> Stop {
    Stop::Failed(format!("usage: {command} {form}"))
}

impl Machine<'_> {
    fn run_script(&mut self, base: Url, text: String) -> BoxFuture<'_, Result<End, Stop>> {
        Box::pin(async move {
            let script = parse(&text).map_err(|e| Stop::Failed(format!("{base}: {e}")))?;
            let mut pc = 0;
            while let Some(line) = script.lines.get(pc) {
                pc += 1;
                let at = |message: String| {
                    format!("{base} line {} ({}): {message}", line.number, line.text)
                };
                match self.run_line(&base, &script, line).await {
                    Ok(Flow::Next) => {}
                    Ok(Flow::Jump(index)) => pc = index,
                    Ok(Flow::Boot) => return Ok(End::Boot),
                    Ok(Flow::Exit(code)) => return Ok(End::Exit(code)),
                    Ok(Flow::Finished) => return Ok(End::Finished),
                    Err(Stop::Failed(m)) => return Err(Stop::Failed(at(m))),
                    Err(Stop::Fatal(m)) => return Err(Stop::Fatal(at(m))),
                }
            }
            Ok(End::Finished)
        })
    }

    /// One line: its commands in order, each run or skipped by the operator before it (iPXE's `system()`).
    async fn run_line(&mut self, base: &Url, script: &Script, line: &Line) -> Result<Flow, Stop> {
        let mut words = &line.words[..];
        let mut run = true;
        let mut status: Result<(), String> = Ok(());
        loop {
            let (count, next) = terminator(words);
            if run && count > 0 {
                self.steps += 1;
                if self.steps > MAX_STEPS {
                    return Err(Stop::Fatal(format!(
                        "more than {MAX_STEPS} commands executed; giving up (loop?)"
                    )));
                }
                let argv: Vec<String> = words[..count].iter().map(|w| self.expand(w)).collect();
                status = match self.command(base, script, &argv).await {
                    Ok(Flow::Next) => Ok(()),
                    // goto, boot, exit and a replacing chain end the line, as iPXE's shell stop does.
                    Ok(flow) => return Ok(flow),
                    Err(Stop::Failed(message)) => Err(message),
                    Err(fatal) => return Err(fatal),
                };
            }
            let Some(next) = next else { break };
            words = &words[count + 1..];
            run = match next {
                Next::Or => status.is_err(),
                Next::And => status.is_ok(),
                Next::Always => true,
            };
        }
        status.map(|()| Flow::Next).map_err(Stop::Failed)
    }

    fn expand(&self, text: &str) -> String {
        expand(text, |name| {
            self.vars
                .get(name)
                .cloned()
                .or_else(|| self.builtins.get(name))
        })
    }

    async fn command(
        &mut self,
        base: &Url,
        script: &Script,
        argv: &[String],
    ) -> Result<Flow, Stop> {
        let (command, args) = argv.split_first().expect("a command has a word");
        match command.as_str() {
            "set" => {
                let (name, value) = args
                    .split_first()
                    .ok_or_else(|| usage("set", "<setting> [<value>]"))?;
                let value = value.join(" ");
                if value.is_empty() {
                    self.vars.remove(name);
                } else {
                    self.vars.insert(name.clone(), value);
                }
            }
            "clear" => {
                let name = args.first().ok_or_else(|| usage("clear", "<setting>"))?;
                self.vars.remove(name);
            }
            "isset" => {
                let [value] = args else {
                    return Err(usage("isset", "<value>"));
                };
                if value.is_empty() {
                    return Err(Stop::Failed("not set".into()));
                }
            }
            "iseq" => {
                let [a, b] = args else {
                    return Err(usage("iseq", "<value1> <value2>"));
                };
                if a != b {
                    return Err(Stop::Failed(format!("{a:?} is not {b:?}")));
                }
            }
            "echo" => {
                let text = match args.first().map(String::as_str) {
                    Some("-n") => &args[1..],
                    _ => args,
                };
                self.console.push(text.join(" "));
            }
            "goto" => {
                let [label] = args else {
                    return Err(usage("goto", "<label>"));
                };
                return script
                    .label(label)
                    .map(Flow::Jump)
                    .ok_or_else(|| Stop::Failed(format!("no label {label:?}")));
            }
            "kernel" | "imgselect" | "initrd" | "imgfetch" | "module" => {
                self.load(base, command, args).await?
            }
            "imgargs" => {
                let (target, rest) = args
                    .split_first()
                    .ok_or_else(|| usage("imgargs", "<image> [<arguments>...]"))?;
                let image = self
                    .find_image(target)
                    .ok_or_else(|| Stop::Failed(format!("no image named {target:?}")))?;
                image.args = rest.to_vec();
            }
            "imgfree" => match args.first() {
                Some(name) => {
                    let before = self.initrds.len() + usize::from(self.kernel.is_some());
                    self.initrds.retain(|i| i.name != *name);
                    if self.kernel.as_ref().is_some_and(|k| k.name == *name) {
                        self.kernel = None;
                    }
                    if before == self.initrds.len() + usize::from(self.kernel.is_some()) {
                        return Err(Stop::Failed(format!("no image named {name:?}")));
                    }
                }
                None => {
                    self.kernel = None;
                    self.initrds.clear();
                }
            },
            "chain" | "imgexec" => return self.chain(base, args).await,
            "boot" => {
                if let Some(name) = args.first() {
                    self.find_image(name)
                        .ok_or_else(|| Stop::Failed(format!("no image named {name:?}")))?;
                }
                if self.kernel.is_none() {
                    return Err(Stop::Failed("no kernel image selected".into()));
                }
                return Ok(Flow::Boot);
            }
            "exit" => {
                let code = match args.first() {
                    Some(code) => code
                        .parse()
                        .map_err(|_| Stop::Failed(format!("invalid exit status {code:?}")))?,
                    None => 0,
                };
                return Ok(Flow::Exit(code));
            }
            // Nobody presses a key at a simulated console: a prompt times out, which is a failure in iPXE.
            "prompt" => return Err(Stop::Failed("no key pressed".into())),
            // Network bring-up and waits succeed at once: the simulated NIC is always up.
            "dhcp" | "ifopen" | "ifconf" | "ifstat" | "ifclose" | "sleep" | "imgstat" | "route"
            | "sync" | "ntp" => {}
            other => {
                return Err(Stop::Fatal(format!(
                    "unknown command {other:?}: the simulated firmware cannot run it"
                )));
            }
        }
        Ok(Flow::Next)
    }

    fn find_image(&mut self, name: &str) -> Option<&mut Image> {
        self.kernel
            .iter_mut()
            .chain(self.initrds.iter_mut())
            .find(|i| i.name == name)
    }

    async fn fetch(&self, base: &Url, target: &str) -> Result<(Url, Download), Stop> {
        let url = base
            .join(target)
            .map_err(|e| Stop::Failed(format!("{target:?} is not a URL: {e}")))?;
        let bytes = self
            .fetcher
            .fetch(url.as_str())
            .await
            .map_err(Stop::Failed)?;
        Ok((url, bytes))
    }

    async fn load(&mut self, base: &Url, command: &str, args: &[String]) -> Result<(), Stop> {
        let (options, rest) = image_options(args)?;
        let (target, image_args) = rest
            .split_first()
            .ok_or_else(|| usage(command, "[--name <name>] <uri|image> [<arguments>...]"))?;
        let (url, download) = self.fetch(base, target).await?;
        let default_name = url
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_string))
            .unwrap_or_default();
        let image = Image {
            name: options.name.unwrap_or(default_name),
            url: url.to_string(),
            bytes: download.bytes,
            sha256: download.sha256,
            args: image_args.to_vec(),
        };
        if matches!(command, "kernel" | "imgselect") {
            self.kernel = Some(image);
            self.chained = false;
        } else {
            self.initrds.push(image);
        }
        Ok(())
    }

    async fn chain(&mut self, base: &Url, args: &[String]) -> Result<Flow, Stop> {
        let (options, rest) = image_options(args)?;
        let (target, image_args) = rest.split_first().ok_or_else(|| {
            usage(
                "chain",
                "[--replace] [--autofree] <uri|image> [<arguments>...]",
            )
        })?;
        let (url, Download { bytes, sha256 }) = self.fetch(base, target).await?;
        if !(bytes.starts_with(b"#!ipxe") || bytes.starts_with(b"#!gpxe")) {
            // Anything else is an executable image: select it and boot it.
            self.kernel = Some(Image {
                name: options.name.unwrap_or_else(|| "chained".into()),
                url: url.to_string(),
                bytes,
                sha256,
                args: image_args.to_vec(),
            });
            self.chained = true;
            return Ok(Flow::Boot);
        }
        self.chains += 1;
        if self.chains > MAX_CHAINS {
            return Err(Stop::Fatal(format!(
                "more than {MAX_CHAINS} chained scripts; giving up"
            )));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match (self.run_script(url, text).await?, options.replace) {
            (End::Boot, _) => Ok(Flow::Boot),
            // A replaced script has nothing to return to.
            (End::Exit(code), true) => Ok(Flow::Exit(code)),
            (End::Finished, true) => Ok(Flow::Finished),
            (End::Exit(0) | End::Finished, false) => Ok(Flow::Next),
            (End::Exit(code), false) => Err(Stop::Failed(format!(
                "the chained script exited with status {code}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
