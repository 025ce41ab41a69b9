use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::translate;

const TEMPLATE: &str = include_str!("../testdata/discovery-ignition-template.yaml");

/// Renders the Go template the way metal-operator does for discovery.
fn rendered_template() -> String {
    TEMPLATE
        .replace("{{.Image}}", "ghcr.io/ironcore-dev/metalprobe:latest")
        .replace("{{.Flags}}", "--registry-url=http://127.0.0.1:10000 --server-uuid=38947555-7742-3448-3784-823347823834")
        .replace("{{.PasswordHash}}", "$2a$10$abcdefghijklmnopqrstuv")
        .replace("{{.SSHPublicKey}}", "\"ssh-rsa AAAAB3NzaC1yc2E metal@harness\"")
}

fn translated(yaml: &str) -> Value {
    serde_json::from_slice(&translate(yaml).unwrap()).unwrap()
}

#[test]
fn discovery_template_translates_to_ignition_3_2() {
    let ign = translated(&rendered_template());
    assert_eq!(ign["ignition"], json!({"version": "3.2.0"}));
    assert_eq!(
        ign["passwd"],
        json!({"users": [{
            "name": "metal",
            "passwordHash": "$2a$10$abcdefghijklmnopqrstuv",
            "sshAuthorizedKeys": ["ssh-rsa AAAAB3NzaC1yc2E metal@harness"],
            "groups": ["wheel"],
        }]})
    );
    // `storage.files: []` produces no storage section at all.
    assert!(ign.get("storage").is_none());
    let units = ign["systemd"]["units"].as_array().unwrap();
    let names: Vec<_> = units.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "var-lib-containerd.mount",
            "containerd.service",
            "metalprobe.service"
        ]
    );
    assert_eq!(units[1]["dropins"][0]["name"], "10-wait-mount.conf");
    assert!(units[1].get("contents").is_none());
    let probe = units[2]["contents"].as_str().unwrap();
    assert!(probe.contains("ExecStart=/usr/bin/ctr run --rm --net-host --privileged ghcr.io/ironcore-dev/metalprobe:latest metalprobe ./launch.sh --registry-url=http://127.0.0.1:10000 --server-uuid=38947555"));
    assert_eq!(units[2]["enabled"], true);
    // Literal block scalars keep their line structure and `|-` strips the final newline.
    assert!(
        units[0]["contents"]
            .as_str()
            .unwrap()
            .starts_with("[Unit]\nDescription=tmpfs")
    );
    assert!(!probe.ends_with('\n'));
}

#[test]
fn files_directories_and_links() {
    let ign = translated(
        r#"
variant: fcos
version: 1.4.0
storage:
  directories:
    - path: /etc/metal
      mode: 0755
  files:
    - path: /etc/hostname
      mode: 0644
      overwrite: true
      contents:
        inline: "node-1\n"
    - path: /etc/motd
      contents:
        source: https://example.invalid/motd
        verification:
          hash: sha512-00
      user:
        name: root
  links:
    - path: /etc/localtime
      target: ../usr/share/zoneinfo/UTC
"#,
    );
    assert_eq!(ign["ignition"]["version"], "3.3.0");
    let files = &ign["storage"]["files"];
    assert_eq!(
        files[0],
        json!({"path": "/etc/hostname", "overwrite": true, "mode": 420, "contents": {"source": "data:,node-1%0A"}})
    );
    assert_eq!(files[1]["contents"]["verification"]["hash"], "sha512-00");
    assert_eq!(files[1]["user"], json!({"name": "root"}));
    assert_eq!(
        ign["storage"]["directories"][0],
        json!({"path": "/etc/metal", "mode": 493})
    );
    assert_eq!(
        ign["storage"]["links"][0]["target"],
        "../usr/share/zoneinfo/UTC"
    );
}

#[test]
fn binary_inline_content_uses_base64_when_shorter() {
    let ign = translated(
        "variant: fcos\nversion: 1.3.0\nstorage:\n  files:\n    - path: /x\n      contents:\n        inline: \"\\u00ff\\u00fe\\u00fd\\u00fc\\u00fb\\u00fa\"\n",
    );
    assert!(
        ign["storage"]["files"][0]["contents"]["source"]
            .as_str()
            .unwrap()
            .starts_with("data:;base64,")
    );
}

#[test]
fn rejects_what_it_cannot_translate_faithfully() {
    let cases = [
        ("variant: flatcar\nversion: 1.0.0\n", "variant"),
        ("variant: fcos\nversion: 9.9.9\n", "version"),
        ("variant: fcos\nversion: 1.3.0\nbogus: 1\n", "bogus"),
        (
            "variant: fcos\nversion: 1.3.0\nstorage:\n  disks: []\n",
            "storage.disks",
        ),
        (
            "variant: fcos\nversion: 1.3.0\nstorage:\n  files:\n    - path: rel\n",
            "absolute",
        ),
        (
            "variant: fcos\nversion: 1.3.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        inline: x\n        source: http://x\n",
            "mutually exclusive",
        ),
        (
            "variant: fcos\nversion: 1.3.0\nsystemd:\n  units:\n    - name: foo\n",
            "suffix",
        ),
        (
            "variant: fcos\nversion: 1.3.0\nsystemd:\n  units:\n    - name: a.service\n    - name: a.service\n",
            "more than once",
        ),
        (
            "variant: fcos\nversion: 1.3.0\npasswd: [",
            "invalid Butane YAML",
        ),
    ];
    for (yaml, expected) in cases {
        let error = translate(yaml).unwrap_err();
        assert!(error.contains(expected), "{yaml:?}: {error}");
    }
}
