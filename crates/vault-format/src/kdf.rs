//! Argon2id parameters and the policy every passphrase slot must meet.
//!
//! The policy is checked when a header is parsed, so out-of-policy
//! parameters are refused before any Argon2 work (they are attacker-chosen
//! until the header MAC has been verified, and the MAC needs the key).

use std::fmt;

use argon2::{Algorithm, Argon2, Version};
use zeroize::Zeroizing;

use crate::error::KdfPolicyError;

/// Argon2id cost parameters (version 0x13, 32-byte output; fixed in v1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    /// Memory in KiB (`m`).
    pub memory_kib: u32,
    /// Passes over memory (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
}

impl KdfParams {
    /// Lowest parameters a v1 vault may carry: 64 MiB, 3 passes, 1 lane.
    pub const FLOOR: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Parameters for new passphrase slots (see `docs/FORMAT.md` for the
    /// measured unlock time).
    pub const DEFAULT: Self = Self {
        memory_kib: 256 * 1024,
        iterations: 3,
        parallelism: 4,
    };

    /// Highest parameters a v1 vault may carry: 4 GiB, 64 passes, 16 lanes.
    pub const CEILING: Self = Self {
        memory_kib: 4 * 1024 * 1024,
        iterations: 64,
        parallelism: 16,
    };

    /// The most work [`crate::Unlock`] allows by default: 1 GiB, 8 passes,
    /// 16 lanes. A forged file can ask for up to the ceiling before its MAC
    /// can be checked; this keeps an unlock with an untrusted file bounded
    /// (about 6 s per passphrase slot on the reference machine).
    pub const UNLOCK_LIMIT: Self = Self {
        memory_kib: 1024 * 1024,
        iterations: 8,
        parallelism: 16,
    };

    /// Whether these parameters ask for no more than `limit` in every
    /// dimension.
    pub fn within(&self, limit: &KdfParams) -> bool {
        self.memory_kib <= limit.memory_kib
            && self.iterations <= limit.iterations
            && self.parallelism <= limit.parallelism
    }

    /// Checks the parameters against [`KdfParams::FLOOR`] and
    /// [`KdfParams::CEILING`]. Pure and cheap: run it before any Argon2 work.
    pub fn check_policy(&self) -> Result<(), KdfPolicyError> {
        let (floor, ceiling) = (Self::FLOOR, Self::CEILING);
        let violation = if self.memory_kib < floor.memory_kib {
            Some("memory below the 64 MiB floor")
        } else if self.memory_kib > ceiling.memory_kib {
            Some("memory above the 4 GiB ceiling")
        } else if self.iterations < floor.iterations {
            Some("fewer than 3 passes")
        } else if self.iterations > ceiling.iterations {
            Some("more than 64 passes")
        } else if self.parallelism < floor.parallelism {
            Some("zero lanes")
        } else if self.parallelism > ceiling.parallelism {
            Some("more than 16 lanes")
        } else {
            None
        };
        match violation {
            Some(reason) => Err(KdfPolicyError {
                params: *self,
                reason,
            }),
            None => Ok(()),
        }
    }

    pub(crate) fn to_bytes(self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[0..4].copy_from_slice(&self.memory_kib.to_le_bytes());
        out[4..8].copy_from_slice(&self.iterations.to_le_bytes());
        out[8..12].copy_from_slice(&self.parallelism.to_le_bytes());
        out
    }
}

impl fmt::Display for KdfParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Argon2id m={} KiB, t={}, p={}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }
}

#[cfg(any(test, feature = "testing"))]
thread_local! {
    /// Argon2 runs on this thread, so tests can prove a refusal came first.
    pub(crate) static ARGON2_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Derives the 32-byte key-encryption key. Callers must have checked the
/// policy; this re-checks it so no caller can forget.
pub(crate) fn derive_kek(
    passphrase: &[u8],
    salt: &[u8; 32],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KdfPolicyError> {
    params.check_policy()?;
    #[cfg(any(test, feature = "testing"))]
    ARGON2_RUNS.with(|runs| runs.set(runs.get() + 1));
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|_| KdfPolicyError {
        params,
        reason: "rejected by the Argon2 implementation",
    })?;
    let mut kek = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into(passphrase, salt, &mut kek[..])
        .map_err(|_| KdfPolicyError {
            params,
            reason: "rejected by the Argon2 implementation",
        })?;
    Ok(kek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_bounds() {
        assert!(KdfParams::FLOOR.check_policy().is_ok());
        assert!(KdfParams::DEFAULT.check_policy().is_ok());
        assert!(KdfParams::CEILING.check_policy().is_ok());
        let out_of_policy = [
            KdfParams {
                memory_kib: 65535,
                ..KdfParams::FLOOR
            },
            KdfParams {
                iterations: 2,
                ..KdfParams::FLOOR
            },
            KdfParams {
                parallelism: 0,
                ..KdfParams::FLOOR
            },
            KdfParams {
                memory_kib: u32::MAX,
                ..KdfParams::FLOOR
            },
            KdfParams {
                iterations: u32::MAX,
                ..KdfParams::FLOOR
            },
            KdfParams {
                parallelism: u32::MAX,
                ..KdfParams::FLOOR
            },
            KdfParams {
                memory_kib: 4 * 1024 * 1024 + 1,
                ..KdfParams::FLOOR
            },
            KdfParams {
                iterations: 65,
                ..KdfParams::FLOOR
            },
            KdfParams {
                parallelism: 17,
                ..KdfParams::FLOOR
            },
        ];
        for params in out_of_policy {
            let runs_before = ARGON2_RUNS.with(|r| r.get());
            assert!(params.check_policy().is_err(), "{params}");
            assert!(derive_kek(b"pw", &[0; 32], params).is_err(), "{params}");
            assert_eq!(ARGON2_RUNS.with(|r| r.get()), runs_before, "{params}");
        }
    }
}
