//! Randomness that a seed can replay: seeded ChaCha8, or the OS when no seed is given.

use std::sync::{Arc, Mutex};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A shared random stream; clones draw from the same stream.
#[derive(Clone, Debug, Default)]
pub struct Entropy {
    /// None: the thread's OS-seeded generator, exactly what unseeded code drew from before.
    seeded: Option<Arc<Mutex<ChaCha8Rng>>>,
}

impl Entropy {
    /// `Some(seed)`: a stream that replays; `None`: seeded from the OS, as an unseeded run always was.
    pub fn from_seed(seed: Option<u64>) -> Self {
        match seed {
            Some(seed) => Self::seeded(seed),
            None => Self::os(),
        }
    }

    pub fn seeded(seed: u64) -> Self {
        Self {
            seeded: Some(Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed)))),
        }
    }

    pub fn os() -> Self {
        Self { seeded: None }
    }

    pub fn is_seeded(&self) -> bool {
        self.seeded.is_some()
    }

    /// Runs `f` on the stream (a seeded one is locked meanwhile: keep it short).
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        match &self.seeded {
            Some(rng) => f(&mut *rng.lock().unwrap_or_else(|e| e.into_inner())),
            None => f(&mut rand::rng()),
        }
    }

    pub fn fill_bytes(&self, buf: &mut [u8]) {
        self.with(|r| r.fill_bytes(buf));
    }

    pub fn next_u64(&self) -> u64 {
        self.with(|r| r.next_u64())
    }

    /// A uniformly random f64 in `[0, 1]`.
    pub fn unit(&self) -> f64 {
        self.with(|r| r.random_range(0.0..=1.0))
    }

    /// A random (version 4) UUID drawn from this stream.
    pub fn uuid_v4(&self) -> uuid::Uuid {
        let mut bytes = [0u8; 16];
        self.fill_bytes(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// `len` characters from `alphabet` (ASCII).
    pub fn string_from(&self, alphabet: &[u8], len: usize) -> String {
        self.with(|r| {
            (0..len)
                .map(|_| char::from(alphabet[r.random_range(0..alphabet.len())]))
                .collect()
        })
    }
}

/// One part's seed from a run's seed: `purpose` names the part, so parts draw independent streams.
pub fn derive_seed(seed: u64, purpose: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_and_another_differs() {
        let (a, b, c) = (Entropy::seeded(7), Entropy::seeded(7), Entropy::seeded(8));
        assert_eq!(a.uuid_v4(), b.uuid_v4());
        assert_eq!(a.string_from(b"abc", 12), b.string_from(b"abc", 12));
        assert_ne!(a.next_u64(), c.next_u64());
        assert_ne!(Entropy::os().uuid_v4(), Entropy::os().uuid_v4());
        assert_eq!(a.uuid_v4().get_version_num(), 4);
    }

    #[test]
    fn derived_seeds_differ_by_purpose_and_seed() {
        assert_eq!(derive_seed(1, "apiserver"), derive_seed(1, "apiserver"));
        assert_ne!(derive_seed(1, "apiserver"), derive_seed(1, "operator"));
        assert_ne!(derive_seed(1, "apiserver"), derive_seed(2, "apiserver"));
    }
}
