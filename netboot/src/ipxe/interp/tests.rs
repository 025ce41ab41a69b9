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
    fn fetch<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<Bytes, String>> {
        self.fetched.lock().unwrap().push(url.to_string());
        let result = self
            .files
            .get(url)
            .cloned()
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
            "line 2 (kernel): GET http://boot/missing: 404 Not Found",
        ),
        ("#!ipxe\nboot\n", "boot: no kernel image loaded"),
        ("#!ipxe\necho only\n", "script ended without booting"),
        ("#!ipxe\nfrobnicate\n", "unknown command \"frobnicate\""),
        ("#!ipxe\n:top\ngoto top\n", "giving up (loop?)"),
        ("#!ipxe\ngoto nowhere\n", "no label \"nowhere\""),
        ("#!ipxe\nexit\n", "script exited instead of booting"),
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
}
