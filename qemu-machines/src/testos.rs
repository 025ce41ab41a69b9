//! A bootable test OS from real files: the Debian kernel under `/boot`, and an initramfs generated here
//! (busybox-static, the virtio network modules of that kernel and an `/init` script) that fetches its
//! ignition and prints one marker line on the serial console. Packaged as OCI images with the ironcore
//! layer media types, so sim-boot or any backend serves them like a real OS.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use cpio::newc::{Builder, ModeFileType};
use sim_boot::oci::catalog::{Catalog, ImageSpec, LayerKind};

/// The line the init script prints once userland runs and the ignition is fetched (see [`Marker`]).
pub const MARKER_PREFIX: &str = "METAL-HARNESS-MARKER";
/// The line the init script prints as its first act (the kernel handed over to userland).
pub const USERLAND_LINE: &str = "metal-harness-os: userland started";
/// Where busybox-static installs.
pub const BUSYBOX: &str = "/bin/busybox";
/// The modules (and, through `modules.dep`, their dependencies) the guest needs: its virtio NIC, and the
/// ACPI power button with the input events acpid reads.
const GUEST_MODULES: &[&str] = &["virtio_pci", "virtio_net", "button", "evdev"];
/// What acpid runs on the power button (busybox acpid's default action for `PWRF`).
const POWER_ACTION: &str =
    "#!/bin/sh\necho 'metal-harness-os: ACPI power button, powering off'\npoweroff -f\n";

/// The real files a test OS is made of.
#[derive(Clone, Debug)]
pub struct RealFiles {
    pub kernel: PathBuf,
    /// `/lib/modules/<version>` of that kernel.
    pub modules: PathBuf,
    pub busybox: PathBuf,
}

impl RealFiles {
    /// The newest installed kernel and busybox, or why a test OS cannot be built (with the package to install).
    pub fn find() -> Result<RealFiles, String> {
        let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
            .map_err(|e| {
                format!("cannot read /boot ({e}); apt-get install linux-image-cloud-amd64")
            })?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .collect();
        kernels.sort();
        let kernel = kernels
            .pop()
            .ok_or("no /boot/vmlinuz-* (apt-get install linux-image-cloud-amd64)")?;
        let version = kernel
            .file_name()
            .and_then(|n| {
                n.to_string_lossy()
                    .strip_prefix("vmlinuz-")
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let modules = PathBuf::from("/lib/modules").join(&version);
        if !modules.join("modules.dep").exists() {
            return Err(format!(
                "no {}/modules.dep for kernel {version} (reinstall linux-image-cloud-amd64)",
                modules.display()
            ));
        }
        let busybox = PathBuf::from(BUSYBOX);
        if !busybox.exists() {
            return Err(format!("no {BUSYBOX} (apt-get install busybox-static)"));
        }
        Ok(RealFiles {
            kernel,
            modules,
            busybox,
        })
    }
}

/// What the OS does after it fetched its ignition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Print the marker and idle.
    Os,
    /// Register the machine's NICs with the operator's registry (`--registry-url=` in the ignition's
    /// metalprobe unit), post the boot state, print the marker, re-register every 30 s, as metalprobe does.
    Probe,
}

/// One test OS image: its identity (`repository:tag`, baked into the initramfs) and flavour.
#[derive(Clone, Debug)]
pub struct TestImage {
    pub reference: String,
    pub flavour: Flavour,
}

/// The kernel and initramfs of one image.
pub struct BuiltImage {
    pub kernel: Bytes,
    pub initramfs: Bytes,
}

/// Builds the kernel + initramfs for `image` from `files`.
pub fn build(files: &RealFiles, image: &TestImage) -> Result<BuiltImage, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let kernel = Bytes::from(read(&files.kernel)?);
    let busybox = read(&files.busybox)?;
    let modules = module_closure(&files.modules, GUEST_MODULES)?;
    let mut loaded = Vec::new();
    for relative in &modules {
        loaded.push((relative.clone(), read(&files.modules.join(relative))?));
    }
    let initramfs = initramfs(
        &busybox,
        &loaded,
        &init_script(&image.reference, image.flavour),
    )
    .map_err(|e| format!("writing the initramfs: {e}"))?;
    Ok(BuiltImage {
        kernel,
        initramfs: Bytes::from(initramfs),
    })
}

/// Adds every image to `catalog` as an amd64 image (index + manifest, ironcore media types), replacing any
/// generated image of the same name. Returns each reference with the digest its tag points at.
pub fn add_to_catalog(
    catalog: &mut Catalog,
    files: &RealFiles,
    images: &[TestImage],
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for image in images {
        let built = build(files, image)?;
        let (repository, tag) = image
            .reference
            .rsplit_once(':')
            .ok_or_else(|| format!("{}: a test image reference needs a tag", image.reference))?;
        let spec = ImageSpec::amd64_index(repository, tag);
        let blobs = vec![vec![
            (LayerKind::Kernel, built.kernel),
            (LayerKind::Initramfs, built.initramfs),
        ]];
        let digest = catalog.add_image_from_blobs(&spec, blobs)?;
        out.push((image.reference.clone(), digest));
    }
    Ok(out)
}

/// The standard test OS set under sim-boot's standard names: the two OS versions and the probe OS.
pub fn standard_images() -> Vec<TestImage> {
    use sim_boot::oci::names;
    vec![
        TestImage {
            reference: names::OS_V1.into(),
            flavour: Flavour::Os,
        },
        TestImage {
            reference: names::OS_V2.into(),
            flavour: Flavour::Os,
        },
        TestImage {
            reference: names::PROBE.into(),
            flavour: Flavour::Probe,
        },
    ]
}

/// Module paths (relative to `/lib/modules/<version>`) to load, dependencies first, from `modules.dep`.
fn module_closure(dir: &Path, wanted: &[&str]) -> Result<Vec<String>, String> {
    let dep_file = dir.join("modules.dep");
    let text = std::fs::read_to_string(&dep_file)
        .map_err(|e| format!("reading {}: {e}", dep_file.display()))?;
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut by_name: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        let name = module
            .rsplit('/')
            .next()
            .unwrap_or(module)
            .split('.')
            .next()
            .unwrap_or_default()
            .replace('-', "_");
        by_name.insert(name, module.to_string());
        deps.insert(
            module.to_string(),
            rest.split_whitespace().map(str::to_string).collect(),
        );
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for name in wanted {
        let module = by_name.get(*name).ok_or_else(|| {
            format!(
                "{name} is not a module of this kernel (built in or missing): see {}",
                dep_file.display()
            )
        })?;
        visit(module, &deps, &mut seen, &mut order, 0)?;
    }
    if let Some(packed) = order.iter().find(|m| !m.ends_with(".ko")) {
        return Err(format!(
            "{packed} is compressed; busybox insmod loads only plain .ko files"
        ));
    }
    Ok(order)
}

fn visit(
    module: &str,
    deps: &HashMap<String, Vec<String>>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<String>,
    depth: usize,
) -> Result<(), String> {
    if depth > 64 {
        return Err(format!(
            "modules.dep: dependency chain of {module} too deep"
        ));
    }
    if !seen.insert(module.to_string()) {
        return Ok(());
    }
    for dep in deps.get(module).into_iter().flatten() {
        visit(dep, deps, seen, order, depth + 1)?;
    }
    order.push(module.to_string());
    Ok(())
}

/// The registration body metalprobe posts, with `@UUID@`, `@TIME@` and `@NICS@` for the script to fill.
fn registration_template() -> String {
    r#"{"systemUUID":"@UUID@","data":{"timestamp":"@TIME@","systemInfo":{"systemInformation":{"uuid":"@UUID@"}},"networkInterfaces":[@NICS@]}}"#.to_string()
}

/// The `/init` script. POSIX sh run by busybox; every loop is bounded or runs for the machine's life.
pub fn init_script(reference: &str, flavour: Flavour) -> String {
    let probe = match flavour {
        Flavour::Os => String::new(),
        Flavour::Probe => probe_section(),
    };
    format!(
        r#"#!/bin/busybox sh
# busybox 1.35 wget segfaults with -T: timeouts come from the timeout applet.
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/ttyS0 2>&1 </dev/null
IMAGE='{reference}'
echo "{USERLAND_LINE} image=$IMAGE"
for m in $(cat /etc/modules-load); do insmod "/lib/modules/$m" || echo "metal-harness-os: insmod $m failed"; done
# -d: foreground, log to the console (daemonised, busybox acpid wants /var/log and never acted here).
acpid -d -c /etc/acpi &
ip link set lo up
nic=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
if [ -z "$nic" ]; then echo "metal-harness-os: no network interface"; fi
ip link set "$nic" up
# QEMU user-mode networking: the guest is 10.0.2.15, the host 10.0.2.2.
ip addr add 10.0.2.15/24 dev "$nic"
ip route add default via 10.0.2.2
cmdline=$(cat /proc/cmdline)
url=""
for word in $cmdline; do
  case "$word" in ignition.config.url=*) url="${{word#ignition.config.url=}}" ;; esac
done
ignition=none
if [ -n "$url" ]; then
  echo "metal-harness-os: fetching ignition $url"
  tries=0
  while [ "$tries" -lt 10 ]; do
    if timeout 20 wget -q -O /tmp/ignition "$url"; then break; fi
    rm -f /tmp/ignition
    tries=$((tries + 1))
    sleep 1
  done
  if [ -f /tmp/ignition ]; then
    ignition=$(sha256sum /tmp/ignition | cut -d ' ' -f 1)
  else
    ignition=fetch-failed
  fi
fi
{probe}echo "{MARKER_PREFIX} image=$IMAGE ignition-sha256=$ignition cmdline=$cmdline"
while true; do sleep 3600; done
"#
    )
}

fn probe_section() -> String {
    let template = registration_template();
    format!(
        r#"probe=none
if [ -f /tmp/ignition ]; then
  registry=$(grep -o -- '--registry-url=[^ "\\]*' /tmp/ignition | head -n 1)
  registry="${{registry#--registry-url=}}"
  registry="${{registry%/}}"
  # The guest reaches the host's loopback through 10.0.2.2.
  registry=$(echo "$registry" | sed -e 's#//127\.0\.0\.1:#//10.0.2.2:#' -e 's#//localhost:#//10.0.2.2:#')
  server=$(grep -o -- '--server-uuid=[^ "\\]*' /tmp/ignition | head -n 1)
  server="${{server#--server-uuid=}}"
  if [ -n "$registry" ] && [ -n "$server" ]; then
    nics=""
    for dev in /sys/class/net/*; do
      name="${{dev##*/}}"
      [ "$name" = lo ] && continue
      mac=$(cat "$dev/address")
      nics="$nics${{nics:+,}}{{\"name\":\"$name\",\"ipAddresses\":[],\"macAddress\":\"$mac\",\"carrierStatus\":\"up\"}}"
    done
    register() {{
      body=$(echo '{template}' | sed -e "s/@UUID@/$server/g" -e "s/@TIME@/$(date -u +%Y-%m-%dT%H:%M:%SZ)/" -e "s/@NICS@/$nics/")
      timeout 20 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$body" "$registry/register"
    }}
    probe=failed
    tries=0
    while [ "$tries" -lt 10 ]; do
      if register; then probe=registered; break; fi
      tries=$((tries + 1))
      sleep 1
    done
    if [ "$probe" = registered ]; then
      timeout 20 wget -q -O /dev/null --header 'Content-Type: application/json' \
        --post-data "{{\"systemUUID\":\"$server\",\"booted\":true}}" "$registry/bootstate" || true
      (while true; do sleep 30; register || true; done) &
    fi
    echo "metal-harness-os: probe $probe with $registry as $server"
  fi
fi
"#
    )
}

/// Writes a newc (initramfs) archive entry by entry: parents before children, as the kernel's unpacker needs.
pub struct Newc {
    out: Vec<u8>,
    ino: u32,
}

impl Default for Newc {
    fn default() -> Self {
        Self::new()
    }
}

impl Newc {
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            ino: 0,
        }
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        kind: ModeFileType,
        data: &[u8],
    ) -> std::io::Result<()> {
        self.ino += 1;
        let console = matches!(kind, ModeFileType::Char);
        let builder = Builder::new(name)
            .ino(self.ino)
            .mode(mode)
            .set_mode_file_type(kind)
            .nlink(1);
        // The only device written is the console: character device 5:1.
        let builder = if console {
            builder.rdev_major(5).rdev_minor(1)
        } else {
            builder
        };
        let mut writer = builder.write(&mut self.out, data.len() as u32);
        writer.write_all(data)?;
        writer.finish().map(|_| ())
    }

    pub fn dir(&mut self, name: &str) -> std::io::Result<()> {
        self.entry(name, 0o755, ModeFileType::Directory, &[])
    }

    /// `/dev/console`, which the kernel opens for init before any filesystem is mounted.
    pub fn console(&mut self) -> std::io::Result<()> {
        self.entry("dev/console", 0o600, ModeFileType::Char, &[])
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.entry(name, mode, ModeFileType::Regular, data)
    }

    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        cpio::newc::trailer(&mut self.out)?;
        Ok(self.out)
    }
}

/// A newc archive: the directories, `/dev/console`, busybox, the modules, their load order and `/init`.
fn initramfs(
    busybox: &[u8],
    modules: &[(String, Vec<u8>)],
    init: &str,
) -> std::io::Result<Vec<u8>> {
    let mut dirs: BTreeSet<String> = [
        ".",
        "bin",
        "dev",
        "etc",
        "etc/acpi",
        "etc/acpi/PWRF",
        "proc",
        "sys",
        "tmp",
        "lib/modules",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    for (path, _) in modules {
        let mut parent = Path::new("lib/modules").join(path);
        while parent.pop() && !parent.as_os_str().is_empty() {
            dirs.insert(parent.to_string_lossy().into_owned());
        }
    }
    let mut archive = Newc::new();
    // Parents sort before their children.
    for dir in &dirs {
        archive.dir(dir)?;
    }
    archive.console()?;
    archive.file("bin/busybox", 0o755, busybox)?;
    for (path, bytes) in modules {
        archive.file(&format!("lib/modules/{path}"), 0o644, bytes)?;
    }
    let load_order: String = modules.iter().map(|(p, _)| format!("{p}\n")).collect();
    archive.file("etc/modules-load", 0o644, load_order.as_bytes())?;
    archive.file("etc/acpi/PWRF/00000080", 0o755, POWER_ACTION.as_bytes())?;
    archive.file("init", 0o755, init.as_bytes())?;
    archive.finish()
}

/// The marker line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    pub image: String,
    /// `None` when the kernel had no `ignition.config.url=`; `Err` text when the fetch failed.
    pub ignition_sha256: Result<Option<String>, String>,
    pub cmdline: String,
}

impl Marker {
    /// Parses a console line carrying the marker (anything before the prefix is ignored).
    pub fn parse(line: &str) -> Option<Marker> {
        let rest = &line[line.find(MARKER_PREFIX)? + MARKER_PREFIX.len()..];
        let rest = rest.trim_start().strip_prefix("image=")?;
        let (image, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("ignition-sha256=")?;
        let (ignition, rest) = rest.split_once(' ')?;
        let cmdline = rest.strip_prefix("cmdline=")?.trim_end().to_string();
        let ignition_sha256 = match ignition {
            "none" => Ok(None),
            "fetch-failed" => Err("the OS could not fetch its ignition".to_string()),
            hex if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Some(hex.to_string()))
            }
            other => Err(format!(
                "the OS printed an unreadable ignition hash {other:?}"
            )),
        };
        Some(Marker {
            image: image.to_string(),
            ignition_sha256,
            cmdline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_round_trips_through_the_script_format() {
        let sha = "a".repeat(64);
        let line = format!(
            "\r{MARKER_PREFIX} image=ironcore/os:1.0 ignition-sha256={sha} cmdline=initrd=initramfs console=ttyS0,115200"
        );
        let marker = Marker::parse(&line).expect("a marker");
        assert_eq!(marker.image, "ironcore/os:1.0");
        assert_eq!(marker.ignition_sha256, Ok(Some(sha)));
        assert_eq!(marker.cmdline, "initrd=initramfs console=ttyS0,115200");
        let failed = Marker::parse(&format!(
            "{MARKER_PREFIX} image=x:1 ignition-sha256=fetch-failed cmdline="
        ))
        .expect("a marker");
        assert!(failed.ignition_sha256.is_err());
        assert_eq!(Marker::parse("no marker here"), None);
        // The script prints the marker in exactly the format parsed here.
        assert!(init_script("x:1", Flavour::Os).contains(&format!(
            "echo \"{MARKER_PREFIX} image=$IMAGE ignition-sha256=$ignition cmdline=$cmdline\""
        )));
    }

    #[test]
    fn the_registration_template_is_what_the_operator_reads() {
        let body = registration_template()
            .replace("@UUID@", "u-1")
            .replace("@TIME@", "2026-12-07T09:00:00Z")
            .replace(
                "@NICS@",
                r#"{"name":"eth0","ipAddresses":[],"macAddress":"52:54:00:00:00:01","carrierStatus":"up"}"#,
            );
        let payload: metal_api::probe_registry::RegistrationPayload =
            serde_json::from_str(&body).expect("the operator's payload type reads it");
        assert_eq!(payload.system_uuid, "u-1");
        assert_eq!(
            payload.data.network_interfaces[0].mac_address,
            "52:54:00:00:00:01"
        );
        assert!(payload.data.timestamp.is_some());
        // The probe section is shell-quoted in single quotes: the template holds none.
        assert!(!registration_template().contains('\''));
    }
}
