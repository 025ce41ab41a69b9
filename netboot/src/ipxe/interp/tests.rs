use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures::future::BoxFuture;
use pretty_assertions::assert_eq;

use super::*;

/// Serves fixed bodies and records what was fetched.
struct Files {
    files: HashMap<String, Bytes>,
    fetched: Mutex<Vec<String>>,
}

impl Files {
    fn new(files: &[(&str, &str)]) -> Self {
        let files = files
            .iter()
            .map(|(u, b)| (u.to_string(), Bytes::from(b.to_string())))
            .collect();
        Self {
            files,
            fetched: Mutex::default(),
        }
    }
}

impl Fetcher for Files {
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Download, String>> {
        self.fetched.lock().unwrap().push(url.to_string());
        let result = self
            .files
            .get(url)
            .cloned()
            .map(Download::new)
            .ok_or_else(|| format!("GET {url}: 404 Not Found"));
        Box::pin(async move { result })
    }
}

fn builtins() -> Builtins {
    Builtins {
        uuid: "1111-2222".into(),
        mac: "02:00:00:00:00:01".into(),
        buildarch: "x86_64".into(),
        platform: "efi".into(),
    }
}

async fn run_script(url: &str, files: &Files) -> Result<BootSelection, String> {
    let text = String::from_utf8_lossy(&files.files[url]).to_string();
    run(url, &text, &builtins(), files).await
}

#[tokio::test]
async fn boots_kernel_with_expanded_args_and_named_initrd() {
    let files = Files::new(&[
        (
            "http://boot/ipxe/1111-2222",
            "#!ipxe\nset base http://boot/a\necho hello ${uuid} on ${buildarch}\nkernel ${base}/k console=ttyS0 ignition.config.url=http://boot/ignition/${uuid}\ninitrd --name initramfs ${base}/i\nimgargs k console=tty0 url=${net0/mac}\nboot\n",
        ),
        ("http://boot/a/k", "KERNEL"),
        ("http://boot/a/i", "INITRD"),
    ]);
    let selection = run_script("http://boot/ipxe/1111-2222", &files)
        .await
        .unwrap();
    assert_eq!(selection.kernel.bytes, Bytes::from_static(b"KERNEL"));
    assert_eq!(
        selection.kernel.args,
        ["console=tty0", "url=02:00:00:00:00:01"]
    );
    assert_eq!(selection.initrds.len(), 1);
    assert_eq!(selection.initrds[0].name, "initramfs");
    assert_eq!(selection.console, ["hello 1111-2222 on x86_64"]);
}

#[tokio::test]
async fn chains_relative_scripts_and_follows_goto() {
    let files = Files::new(&[
        ("http://boot/ipxe", "#!ipxe\nchain ipxe/${uuid}\n"),
        (
            "http://boot/ipxe/1111-2222",
            "#!ipxe\ngoto load\necho skipped\n:load\nkernel ../k arg\nboot\n",
        ),
        ("http://boot/k", "KERNEL"),
    ]);
    let selection = run_script("http://boot/ipxe", &files).await.unwrap();
    assert_eq!(selection.kernel.url, "http://boot/k");
    assert_eq!(selection.kernel.args, ["arg"]);
    assert!(selection.console.is_empty());
}

#[tokio::test]
async fn failures_name_the_line_and_cause() {
    let cases = [
        (
            "#!ipxe\nkernel http://boot/missing\nboot\n",
            "line 2 (kernel http://boot/missing): GET http://boot/missing: 404 Not Found",
        ),
        ("#!ipxe\nboot\n", "line 2 (boot): no kernel image selected"),
        ("#!ipxe\necho only\n", "script ended without booting"),
        (
            "#!ipxe\necho a\nfrobnicate --x || echo handled\n",
            "line 3 (frobnicate --x || echo handled): unknown command \"frobnicate\"",
        ),
        ("#!ipxe\n:top\ngoto top\n", "giving up (loop?)"),
        (
            "#!ipxe\n:top\nisset ${x} || goto top\n",
            "giving up (loop?)",
        ),
        ("#!ipxe\ngoto nowhere\n", "no label \"nowhere\""),
        (
            "#!ipxe\nexit\n",
            "script exited (status 0) instead of booting",
        ),
        (
            "#!ipxe\nexit 3\nboot\n",
            "script exited (status 3) instead of booting",
        ),
        (
            "#!ipxe\nprompt --timeout 1 Press a key\nboot\n",
            "line 2 (prompt --timeout 1 Press a key): no key pressed",
        ),
        (
            "#!ipxe\nkernel --bogus http://boot/k\n",
            "invalid option \"--bogus\"",
        ),
        (
            "#!ipxe\niseq a b && kernel http://boot/k\nboot\n",
            "line 2 (iseq a b && kernel http://boot/k): \"a\" is not \"b\"",
        ),
        (
            "#!ipxe\nchain http://boot/self\n",
            "more than 8 chained scripts",
        ),
        ("not a script", "not an iPXE script"),
    ];
    for (script, expected) in cases {
        let files = Files::new(&[
            ("http://boot/s", script),
            ("http://boot/self", "#!ipxe\nchain http://boot/self\n"),
            ("http://boot/k", "KERNEL"),
        ]);
        let error = run_script("http://boot/s", &files).await.unwrap_err();
        assert!(error.contains(expected), "{script:?}: {error}");
    }
}

#[tokio::test]
async fn chaining_a_binary_boots_it() {
    let files = Files::new(&[
        ("http://boot/s", "#!ipxe\nchain http://boot/uki.efi quiet\n"),
        ("http://boot/uki.efi", "MZ..."),
    ]);
    let selection = run_script("http://boot/s", &files).await.unwrap();
    assert_eq!(selection.kernel.args, ["quiet"]);
    assert_eq!(selection.kernel.bytes, Bytes::from_static(b"MZ..."));
    assert!(selection.chained);
}

/// boot-operator's chainload template (`templates/ipxe-chainload.tpl`) and per-machine script
/// (`templates/ipxe-script.tpl`) as it renders them, with a squashfs layer.
fn boot_operator_files() -> Files {
    let kernel = "http://boot/image?imageName=ghcr.io%2Fironcore-dev%2Fos&version=1.0&layerDigest=sha256%3Aaa";
    let initrd = "http://boot/image?imageName=ghcr.io%2Fironcore-dev%2Fos&version=1.0&layerDigest=sha256%3Abb";
    let squashfs = "http://boot/image?imageName=ghcr.io%2Fironcore-dev%2Fos&version=1.0&layerDigest=sha256%3Acc";
    let chainload = "#!ipxe\n\nset ipxe-svc http://boot\n\nset base-url ${ipxe-svc}/ipxe\nchain --replace --autofree ${base-url}/${uuid}";
    let script = format!(
        "#!ipxe\n\nset ipxe-svc http://boot\nset kernel-url {kernel}\nset initrd-url {initrd}\nset squashfs-url {squashfs}\n\necho Loading kernel...\nkernel ${{kernel-url}} initrd=initrd gl.ovl=/:tmpfs gl.url=${{squashfs-url}} gl.live=1 ip=any ignition.firstboot=1 ignition.config.url=${{ipxe-svc}}/ignition/${{uuid}} ignition.platform.id=metal console=ttyS0,115200 console=tty0 console=ttyAMA0 earlyprintk=ttyS0,115200 consoleblank=0\necho Loading initrd...\ninitrd ${{initrd-url}}\necho Booting...\nboot\n"
    );
    let mut files = Files::new(&[
        ("http://boot/ipxe/", chainload),
        (kernel, "KERNEL"),
        (initrd, "INITRD"),
    ]);
    files
        .files
        .insert("http://boot/ipxe/1111-2222".into(), Bytes::from(script));
    files
}

#[tokio::test]
async fn runs_boot_operators_chainload_and_machine_templates() {
    let files = boot_operator_files();
    let selection = run_script("http://boot/ipxe/", &files).await.unwrap();
    assert!(selection.kernel.url.ends_with("layerDigest=sha256%3Aaa"));
    assert!(
        selection
            .kernel
            .args
            .contains(&"ignition.config.url=http://boot/ignition/1111-2222".to_string())
    );
    assert!(
        selection
            .kernel
            .args
            .iter()
            .any(|a| a.starts_with("gl.url=http://boot/image?"))
    );
    assert_eq!(selection.initrds.len(), 1);
    assert_eq!(selection.initrds[0].name, "image");
    assert_eq!(
        selection.console,
        ["Loading kernel...", "Loading initrd...", "Booting..."]
    );
    assert!(!selection.chained);
}

/// The constructs real menus and fallbacks use: `isset … ||`, `iseq … &&`, `goto`/labels, `||` fallbacks
/// after a failed download, `;`, trailing comments, `imgargs`, `imgfree`, `${net0/mac}`, `${mac:hexhyp}`.
#[tokio::test]
async fn handles_operators_defaults_fallbacks_and_comments() {
    let script = "#!ipxe\n\
        isset ${base-url} || set base-url http://boot/a   # default when DHCP gave none\n\
        iseq ${buildarch} arm64 && set arch aarch64 || set arch x86_64\n\
        echo arch=${arch} mac=${net0/mac} id=${mac:hexhyp} ; echo second\n\
        kernel ${base-url}/missing || goto fallback\n\
        echo not reached\n\
        :fallback\n\
        imgfetch --name junk ${base-url}/i\n\
        imgfree junk\n\
        kernel --name vmlinuz ${base-url}/k\n\
        initrd --name=initrd ${base-url}/i\n\
        imgargs vmlinuz initrd=initrd \\\n  root=live\n\
        chain --autofree ${base-url}/sub.ipxe || goto failed\n\
        boot vmlinuz || goto failed\n\
        :failed\n\
        exit 1\n";
    let files = Files::new(&[
        ("http://boot/s", script),
        ("http://boot/a/k", "KERNEL"),
        ("http://boot/a/i", "INITRD"),
        ("http://boot/a/sub.ipxe", "#!ipxe\necho in sub\nexit 0\n"),
    ]);
    let selection = run_script("http://boot/s", &files).await.unwrap();
    assert_eq!(selection.kernel.name, "vmlinuz");
    assert_eq!(selection.kernel.args, ["initrd=initrd", "root=live"]);
    assert_eq!(selection.initrds.len(), 1, "imgfree dropped junk");
    assert_eq!(selection.initrds[0].name, "initrd");
    assert_eq!(
        selection.console,
        [
            "arch=x86_64 mac=02:00:00:00:00:01 id=02-00-00-00-00-01",
            "second",
            "in sub"
        ]
    );
    let fetched = files.fetched.lock().unwrap().clone();
    assert_eq!(fetched[0], "http://boot/a/missing");
}

#[tokio::test]
async fn a_failing_chained_script_is_handled_by_the_caller_or_named() {
    let files = Files::new(&[
        (
            "http://boot/s",
            "#!ipxe\nchain http://boot/bad.ipxe || goto rescue\n:rescue\nkernel http://boot/k\nboot\n",
        ),
        (
            "http://boot/bad.ipxe",
            "#!ipxe\nkernel http://boot/gone\nboot\n",
        ),
        (
            "http://boot/t",
            "#!ipxe\nchain --replace http://boot/bad.ipxe\n",
        ),
        ("http://boot/k", "KERNEL"),
    ]);
    let selection = run_script("http://boot/s", &files).await.unwrap();
    assert_eq!(selection.kernel.url, "http://boot/k");
    let error = run_script("http://boot/t", &files).await.unwrap_err();
    assert!(
        error.contains("http://boot/t line 2 (chain --replace http://boot/bad.ipxe): http://boot/bad.ipxe line 2 (kernel http://boot/gone): GET http://boot/gone: 404"),
        "{error}"
    );
}
