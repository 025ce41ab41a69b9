//! What the suite runs against: a Kubernetes API, the images a backend can and cannot serve, and the optional
//! controls (restart the backend, disturb the API server, boot a machine) that the non-core profiles need.

use crate::timeouts::Timeouts;
use futures::future::BoxFuture;
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Image references the checks use (the built-in registries' set lives with them in `testbed`).
pub use testbed::registries::ImageSet;

/// Restarts and watches the backend under test.
pub trait BackendControl: Send + Sync {
    /// Restarts the backend and returns once the new instance has been started.
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>>;
    /// Unexpected exits (crashes) seen since the run started, with exit status.
    fn unexpected_exits(&self) -> BoxFuture<'_, anyhow::Result<Vec<String>>>;
    /// Whether [`Self::unexpected_exits`] observes the backend's process at all; when false, rules about the
    /// process staying up are Skip rather than a Pass on no evidence.
    fn observes_process(&self) -> bool;
    /// The last lines of the backend's log, when the suite has it.
    fn log_tail(&self, _lines: usize) -> Vec<String> {
        Vec::new()
    }
}

/// Signs of life of the backend seen by the run: a "never Ready" verdict is credited only after the backend has
/// shown it reconciles, and a backend that never does stops the run.
#[derive(Debug, Default)]
pub struct Activity {
    first_sbc_created: OnceLock<Duration>,
    first_status_write: OnceLock<Duration>,
}

impl Activity {
    /// The suite created an SBC at `at` (run time).
    pub fn sbc_created(&self, at: Duration) {
        let _ = self.first_sbc_created.set(at);
    }

    /// An SBC with a non-empty status was observed at `at`: only the backend writes status.
    pub fn status_written(&self, at: Duration) {
        let _ = self.first_status_write.set(at);
    }

    pub fn first_sbc_created(&self) -> Option<Duration> {
        self.first_sbc_created.get().copied()
    }

    pub fn first_status_write(&self) -> Option<Duration> {
        self.first_status_write.get().copied()
    }
}

/// Disturbs the API server the backend talks to (embedded mode only).
pub trait ApiControl: Send + Sync {
    /// Ends every open watch; clients must re-watch.
    fn drop_watches(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Makes resumed watches fail with 410 Gone so clients must re-list.
    fn expire_watches(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Restarts the API server, keeping its data and address.
    fn restart(&self) -> Option<BoxFuture<'_, anyhow::Result<()>>>;
}

pub use sim_bmc::boot::{ArtifactKind, BootArtifact};

/// What a simulated machine got when it network-booted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum BootResult {
    Booted {
        /// The image the boot chain named (the header of generated artifacts); None for real images, whose
        /// identity is their artifacts' digests.
        image: Option<String>,
        /// The digest the machine verified its image by, when the boot chain carried one.
        image_digest: Option<String>,
        /// SHA-256 (hex) of the ignition the machine fetched.
        ignition_sha256: Option<String>,
        /// Every boot artifact the machine downloaded (kernel, initrds, squashfs, UKI), with its digest.
        artifacts: Vec<BootArtifact>,
    },
    Failed {
        reason: String,
    },
}

/// A boot layer of an image, as its registry lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedLayer {
    pub media_type: String,
    /// What a machine uses the layer as.
    pub kind: ArtifactKind,
    pub digest: String,
    pub size: u64,
}

/// What a correct boot of an image looks like, as resolved from its registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedImage {
    /// `registry/repository`, without tag or digest.
    pub name: String,
    /// The tag, if the reference had one.
    pub tag: Option<String>,
    /// The machines' architecture the layers are for.
    pub architecture: String,
    /// Manifest digests a machine may report: the reference's, and the architecture's platform manifests.
    pub digests: Vec<String>,
    /// The boot layers (every media type boot-operator knows) of the architecture's manifests.
    pub layers: Vec<ExpectedLayer>,
}

impl ExpectedImage {
    /// The layer with this digest.
    pub fn layer(&self, digest: &str) -> Option<&ExpectedLayer> {
        self.layers.iter().find(|l| l.digest == digest)
    }

    /// `name[:tag]`.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Boots a simulated machine with the given SMBIOS UUID from the boot network.
pub trait MachineBoot: Send + Sync {
    fn boot<'a>(&'a self, system_uuid: &'a str) -> BoxFuture<'a, anyhow::Result<BootResult>>;
    /// What a machine booting `image` should report.
    fn expected<'a>(&'a self, image: &'a str) -> BoxFuture<'a, anyhow::Result<ExpectedImage>>;
}

/// Everything the checks need.
pub struct Target {
    pub client: kube::Client,
    pub images: ImageSet,
    pub timeouts: Timeouts,
    pub backend: Option<Arc<dyn BackendControl>>,
    pub api: Option<Arc<dyn ApiControl>>,
    pub boot: Option<Arc<dyn MachineBoot>>,
    /// Number of SBCs the scale profile creates at once.
    pub scale_count: usize,
    /// Unique per run; the value of the suite label, so cleanup only ever touches this run's objects.
    pub run_id: String,
    /// Start of the run; every recorded time is relative to it (tokio clock).
    pub epoch: Instant,
    /// Cancelled on Ctrl-C: checks stop and clean up.
    pub cancel: CancellationToken,
    /// What the run saw of the backend's work.
    pub activity: Arc<Activity>,
}
