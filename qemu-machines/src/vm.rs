//! One QEMU process: started with the machine's identity (SMBIOS UUID, NIC MACs), its serial console read
//! line by line into a bounded buffer, controlled over QMP, and never outliving its owner: dropping the
//! [`Vm`] kills it, `kill_on_drop` covers a dropped task, and `setpriv --pdeathsig KILL` (util-linux) covers
//! a harness killed outright.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::{oneshot, watch};

use crate::lock;

/// Console lines kept per VM (oldest dropped first) and the longest line kept.
pub const CONSOLE_LINES: usize = 2000;
const CONSOLE_LINE_BYTES: usize = 512;
const QMP_TIMEOUT: Duration = Duration::from_secs(5);

/// The accelerator a VM runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// What the VM boots.
#[derive(Clone, Debug)]
pub enum BootFrom {
    /// The NIC's option ROM (iPXE), DHCP answering with this boot file URL.
    Network { boot_file: String },
    /// A kernel (and initramfs) given directly: the accelerator probe, and the benchmark's baseline.
    Kernel {
        kernel: PathBuf,
        initrd: Option<PathBuf>,
        append: String,
    },
}

/// The platform firmware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (QEMU's default): iPXE's output goes to the VGA console only.
    #[default]
    Bios,
    /// OVMF (UEFI): iPXE's EFI build runs and prints its progress on the serial console.
    Uefi,
}

/// OVMF's code (read-only) and the template of its variable store (copied per VM).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

#[derive(Clone, Debug)]
pub struct VmSpec {
    pub binary: PathBuf,
    pub firmware: Firmware,
    pub uuid: String,
    pub macs: Vec<String>,
    pub memory_mib: u32,
    pub accel: Accel,
    pub boot: BootFrom,
}

/// Called with every console line (carriage returns and escape noise stripped).
pub type LineHook = Arc<dyn Fn(&str) + Send + Sync>;

/// The bounded console buffer.
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<VecDeque<String>>>);

impl Console {
    fn push(&self, line: String) {
        let mut lines = lock(&self.0);
        if lines.len() == CONSOLE_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    pub fn lines(&self) -> Vec<String> {
        lock(&self.0).iter().cloned().collect()
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }
}

/// A running QEMU.
pub struct Vm {
    pub console: Console,
    pid: Option<u32>,
    qmp: PathBuf,
    exited: watch::Receiver<Option<String>>,
    _kill: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Vm {
    /// Starts QEMU; `hook` sees each console line as it arrives.
    pub async fn start(spec: &VmSpec, hook: LineHook) -> Result<Vm, String> {
        let dir = tempfile::Builder::new()
            .prefix("qemu-vm-")
            .tempdir()
            .map_err(|e| format!("creating the VM's directory: {e}"))?;
        let qmp = dir.path().join("qmp.sock");
        let mut args = qemu_args(spec, &qmp);
        if spec.firmware == Firmware::Uefi {
            let vars = dir.path().join("OVMF_VARS.fd");
            std::fs::copy(OVMF_VARS, &vars)
                .map_err(|e| format!("copying {OVMF_VARS} (apt-get install ovmf): {e}"))?;
            args.extend([
                "-drive".into(),
                format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!("if=pflash,format=raw,file={}", vars.display()),
            ]);
        }
        // setpriv makes the kernel kill QEMU when the harness dies, whatever way it dies.
        let mut command = if setpriv_available() {
            let mut c = Command::new("setpriv");
            c.args(["--pdeathsig", "KILL"]).arg(&spec.binary);
            c
        } else {
            Command::new(&spec.binary)
        };
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", spec.binary.display()))?;
        let pid = child.id();
        let console = Console::default();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let reader_console = console.clone();
        let reader = tokio::spawn(async move {
            if let Some(out) = stdout {
                read_lines(out, |line| {
                    hook(&line);
                    reader_console.push(line);
                })
                .await;
            }
        });
        let err_console = console.clone();
        let err_reader = tokio::spawn(async move {
            if let Some(err) = stderr {
                read_lines(err, |line| err_console.push(format!("qemu: {line}"))).await;
            }
        });
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            // The console readers end with the process's pipes; their last lines belong to the exit.
            let _ = reader.await;
            let _ = err_reader.await;
            let _ = exit_tx.send(Some(match status {
                Ok(s) => format!("QEMU exited ({s})"),
                Err(e) => format!("QEMU could not be waited for: {e}"),
            }));
        });
        Ok(Vm {
            console,
            pid,
            qmp,
            exited,
            _kill: kill_tx,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Resolves with the exit reason once QEMU has ended.
    pub fn exited(&self) -> watch::Receiver<Option<String>> {
        self.exited.clone()
    }

    /// Runs one QMP command (`system_powerdown`, `system_reset`, …).
    pub async fn qmp(&self, command: &str) -> Result<serde_json::Value, String> {
        qmp(&self.qmp, command).await
    }
}

/// Whether util-linux's `setpriv` with `--pdeathsig` is installed.
fn setpriv_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::process::Command::new("setpriv")
            .arg("--help")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("pdeathsig"))
    })
}

fn qemu_args(spec: &VmSpec, qmp: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-smp",
        "1",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    a.extend(["-accel".into(), spec.accel.as_str().into()]);
    a.extend(["-m".into(), spec.memory_mib.to_string()]);
    a.extend(["-uuid".into(), spec.uuid.clone()]);
    a.extend([
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp.display()),
    ]);
    match &spec.boot {
        BootFrom::Network { boot_file } => {
            a.extend(["-boot".into(), "order=n,strict=on".into()]);
            for (i, mac) in spec.macs.iter().enumerate() {
                // Only the first NIC boots; QEMU option values escape ',' as ',,'.
                let netdev = match i {
                    0 => format!("user,id=n0,bootfile={}", boot_file.replace(',', ",,")),
                    _ => format!("user,id=n{i},restrict=on"),
                };
                let rom = if i == 0 { "" } else { ",romfile=" };
                a.extend(["-netdev".into(), netdev]);
                a.extend([
                    "-device".into(),
                    format!("virtio-net-pci,netdev=n{i},mac={mac}{rom}"),
                ]);
            }
        }
        BootFrom::Kernel {
            kernel,
            initrd,
            append,
        } => {
            a.extend(["-no-reboot".into(), "-kernel".into()]);
            a.push(kernel.display().to_string());
            if let Some(initrd) = initrd {
                a.extend(["-initrd".into(), initrd.display().to_string()]);
            }
            a.extend(["-append".into(), append.clone()]);
            for (i, mac) in spec.macs.iter().enumerate() {
                a.extend(["-netdev".into(), format!("user,id=n{i}")]);
                a.extend([
                    "-device".into(),
                    format!("virtio-net-pci,netdev=n{i},mac={mac},romfile="),
                ]);
            }
        }
    }
    a
}

/// Reads lines (CR and escape sequences removed) until EOF. A line keeps at most [`LINE_BUFFER`] bytes; the rest
/// of an overlong line is read and dropped, so a guest printing without newlines cannot grow the buffer.
async fn read_lines(stream: impl tokio::io::AsyncRead + Unpin, mut each: impl FnMut(String)) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (taken, complete) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = LINE_BUFFER.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..taken.min(room)]);
        reader.consume(taken);
        if complete {
            emit(&line, &mut each);
            line.clear();
        }
    }
    emit(&line, &mut each);
}

/// Bytes of one console line read before cleaning (escape sequences take room too).
const LINE_BUFFER: usize = 4 * CONSOLE_LINE_BYTES;

fn emit(raw: &[u8], each: &mut impl FnMut(String)) {
    let clean = clean_line(&String::from_utf8_lossy(raw));
    if !clean.is_empty() {
        each(clean);
    }
}

/// Drops ANSI escape sequences and control characters; keeps at most [`CONSOLE_LINE_BYTES`].
fn clean_line(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        if c.is_control() {
            continue;
        }
        if out.len() + c.len_utf8() > CONSOLE_LINE_BYTES {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// One QMP exchange: greeting, capabilities, the command, its answer (events in between skipped).
async fn qmp(socket: &Path, command: &str) -> Result<serde_json::Value, String> {
    let exchange = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("QMP {}: {e}", socket.display()))?;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut answer = async || -> Result<serde_json::Value, String> {
            for _ in 0..64 {
                let line = lines
                    .next_line()
                    .await
                    .map_err(|e| format!("QMP read: {e}"))?
                    .ok_or("QMP closed")?;
                let value: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| format!("QMP answer {line:?}: {e}"))?;
                if value.get("return").is_some() || value.get("QMP").is_some() {
                    return Ok(value);
                }
                if let Some(error) = value.get("error") {
                    return Err(format!("QMP error: {error}"));
                }
            }
            Err("QMP: no answer among 64 messages".into())
        };
        answer().await?; // greeting
        for execute in ["qmp_capabilities", command] {
            let request = format!("{{\"execute\":\"{execute}\"}}\n");
            write
                .write_all(request.as_bytes())
                .await
                .map_err(|e| format!("QMP write: {e}"))?;
            let value = answer().await?;
            if execute == command {
                return Ok(value);
            }
        }
        Err("QMP: unreachable".to_string())
    };
    tokio::time::timeout(QMP_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("QMP {command}: no answer within {QMP_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endless_line_is_cut_and_the_next_one_still_read() {
        let mut input = vec![b'x'; 1_000_000];
        input.extend_from_slice(b"\r\nnext line\n");
        let mut lines = Vec::new();
        read_lines(input.as_slice(), |l| lines.push(l)).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), CONSOLE_LINE_BYTES);
        assert_eq!(lines[1], "next line");
    }

    #[test]
    fn console_lines_lose_escapes_and_stay_bounded() {
        assert_eq!(clean_line("\u{1b}[2J\u{1b}[1;1Hhello\r\n"), "hello");
        assert_eq!(clean_line(&"x".repeat(2000)).len(), CONSOLE_LINE_BYTES);
        let console = Console::default();
        for i in 0..CONSOLE_LINES + 5 {
            console.push(i.to_string());
        }
        let lines = console.lines();
        assert_eq!(lines.len(), CONSOLE_LINES);
        assert_eq!(lines[0], "5");
    }

    #[test]
    fn the_first_nic_boots_and_commas_are_escaped() {
        let spec = VmSpec {
            binary: "qemu-system-x86_64".into(),
            firmware: Firmware::Bios,
            uuid: "u".into(),
            macs: vec!["52:54:00:00:00:01".into(), "52:54:00:00:00:02".into()],
            memory_mib: 256,
            accel: Accel::Tcg,
            boot: BootFrom::Network {
                boot_file: "http://10.0.2.2:1/a,b".into(),
            },
        };
        let args = qemu_args(&spec, Path::new("/tmp/q.sock")).join(" ");
        assert!(
            args.contains("user,id=n0,bootfile=http://10.0.2.2:1/a,,b"),
            "{args}"
        );
        assert!(
            args.contains("virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01 "),
            "{args}"
        );
        assert!(
            args.contains("netdev=n1,mac=52:54:00:00:00:02,romfile="),
            "{args}"
        );
        assert!(args.contains("-uuid u"), "{args}");
    }
}
