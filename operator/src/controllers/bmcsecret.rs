//! The BMCSecret reconciler. Upstream's is an empty scaffold; here it checks that the secret carries
//! `username` and `password` (a Warning event otherwise) so a broken secret is visible before a BMC
//! fails to authenticate. BMCs referencing it are re-reconciled by the BMC controller's watch.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use metal_api::BMCSecret;
use watches::Fanout;

use super::name_of;
use crate::context::Context;
use crate::error::{Error, Result};

pub const CONTROLLER: &str = "bmcsecret";

/// Builds the BMCSecret controller; its watch goes on to `secrets`' subscribers (the BMC controller).
pub fn controller(client: kube::Client, secrets: &Fanout<BMCSecret>) -> Controller<BMCSecret> {
    watches::controller_publishing(Api::<BMCSecret>::all(client), None, secrets)
}

pub(crate) async fn reconcile(secret: Arc<BMCSecret>, _ctx: Arc<Context>) -> Result<Action> {
    if secret.credentials().is_none() {
        return Err(Error::Invalid {
            kind: "BMCSecret",
            name: name_of(&*secret),
            reason: "needs keys username and password in data or stringData".into(),
        });
    }
    Ok(Action::await_change())
}
