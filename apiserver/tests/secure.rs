//! Secure serving: TLS with a generated certificate (in the kubeconfig's CA data) and a required bearer token.

mod common;

use apiserver::{Options, Server};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_token_are_required_and_work_with_kube_and_kubectl() {
    let h = start_secure().await;
    assert!(h.url().starts_with("https://127.0.0.1:"));
    let nss: Api<Namespace> = Api::all(h.client());
    let namespaces = nss.list(&ListParams::default()).await.unwrap().items;
    assert!(
        namespaces
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("default"))
    );

    // The right CA but no token: 401 Unauthorized.
    let mut anonymous = h.kube_config();
    anonymous.auth_info.token = None;
    let err = Api::<Namespace>::all(kube::Client::try_from(anonymous).unwrap())
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 401),
        "{err:?}"
    );
    // No CA: the TLS handshake fails.
    let mut untrusted = h.kube_config();
    untrusted.root_cert = None;
    assert!(
        Api::<Namespace>::all(kube::Client::try_from(untrusted).unwrap())
            .list(&ListParams::default())
            .await
            .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    h.write_kubeconfig(&kubeconfig).unwrap();
    let out = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "namespaces", "-o", "name"])
        .output()
        .await
        .expect("kubectl is required at /usr/bin/kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/default"));
    h.shutdown().await;
}

/// Stopping a TLS server ends its open watches and its kept-alive connections too: a client holding one is not
/// served by the stopped server (its writes would be lost to a restarted one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_and_watches_end_when_the_server_stops() {
    use futures::StreamExt;

    let h = start_secure().await;
    let nss: Api<Namespace> = Api::all(h.client());
    nss.list(&ListParams::default()).await.unwrap();
    let mut watch = nss
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    tokio::time::timeout(std::time::Duration::from_secs(30), h.shutdown())
        .await
        .expect("shutdown is not kept waiting by an open watch");
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(Ok(_)) = watch.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the open watch ends with its server");
    assert!(
        nss.list(&ListParams::default()).await.is_err(),
        "a kept-alive connection is not served by the stopped server"
    );
}

/// The embedded server with TLS and a bearer token.
async fn start_secure() -> apiserver::Handle {
    let options = Options {
        secure: true,
        ..Default::default()
    };
    Server::start(options).await.unwrap()
}
