//! The rollback pin: what a reader remembers about the newest vault it has
//! seen, kept outside the vault (the CLI stores it in its state directory).

use std::fmt;

use subtle::ConstantTimeEq;

use crate::error::PinParseError;
use crate::header::VaultId;

/// What a reader remembers about a vault: id, highest generation seen, the
/// header MAC at that generation, and a fingerprint of the vault key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// The vault id.
    pub vault_id: VaultId,
    /// Highest generation seen.
    pub generation: u64,
    /// Header MAC at that generation.
    pub header_mac: [u8; 32],
    /// `HKDF(MK, salt = vault_id, "tokvault/v1 key fingerprint")`.
    pub key_fingerprint: [u8; 32],
}

/// How an opened vault relates to the stored pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinStatus {
    /// No pin yet: trust on first use.
    New,
    /// The very write the pin recorded.
    Same,
    /// A later write of the same vault under the same key.
    Newer {
        /// Generation in the pin.
        pinned: u64,
    },
    /// An older write: a restored backup, or an attacker replaying one.
    Rollback {
        /// Generation in the pin.
        pinned: u64,
        /// Generation opened.
        found: u64,
    },
    /// The pinned generation, but different contents: two writers diverged,
    /// or a forgery.
    Fork {
        /// The generation both claim.
        generation: u64,
    },
    /// The pinned vault id under a different vault key: a rekey elsewhere,
    /// or a substitute vault forged to the same public recipient.
    DifferentKey,
    /// Another vault altogether.
    DifferentVault,
}

impl PinStatus {
    /// Whether the vault may be used without the user's say-so (`New`,
    /// `Same`, `Newer`).
    pub fn is_trusted(self) -> bool {
        matches!(self, Self::New | Self::Same | Self::Newer { .. })
    }
}

impl Pin {
    /// Classifies `opened` (the pin of the vault just opened) against the
    /// stored pin. The key is compared first: a forger can choose any
    /// generation, but not the key fingerprint.
    pub fn classify(stored: Option<&Pin>, opened: &Pin) -> PinStatus {
        let Some(stored) = stored else {
            return PinStatus::New;
        };
        if stored.vault_id != opened.vault_id {
            return PinStatus::DifferentVault;
        }
        if !bool::from(stored.key_fingerprint.ct_eq(&opened.key_fingerprint)) {
            return PinStatus::DifferentKey;
        }
        stored.by_generation(opened.generation, &opened.header_mac)
    }

    /// How a vault of `generation` with `header_mac` relates to this pin of
    /// the same vault (and key).
    fn by_generation(&self, generation: u64, header_mac: &[u8; 32]) -> PinStatus {
        match generation.cmp(&self.generation) {
            std::cmp::Ordering::Greater => PinStatus::Newer {
                pinned: self.generation,
            },
            std::cmp::Ordering::Less => PinStatus::Rollback {
                pinned: self.generation,
                found: generation,
            },
            std::cmp::Ordering::Equal if self.header_mac == *header_mac => PinStatus::Same,
            std::cmp::Ordering::Equal => PinStatus::Fork { generation },
        }
    }

    /// Classifies a header read without the key against the stored pin:
    /// like [`Pin::classify`] but without the key fingerprint, which needs
    /// the key (`tokvault inspect`). `header_mac` is the MAC as stored.
    pub fn classify_header(
        stored: Option<&Pin>,
        header: &crate::Header,
        header_mac: &[u8; 32],
    ) -> PinStatus {
        let Some(stored) = stored else {
            return PinStatus::New;
        };
        if stored.vault_id != header.vault_id {
            return PinStatus::DifferentVault;
        }
        stored.by_generation(header.generation, header_mac)
    }

    /// Parses the one-line text form written by `Display`:
    /// `tokvault-pin v1 <vault id> <generation> <mac> <fingerprint>` (hex).
    pub fn parse(text: &str) -> Result<Self, PinParseError> {
        let mut fields = text.trim_end_matches('\n').split(' ');
        if fields.next() != Some("tokvault-pin") || fields.next() != Some("v1") {
            return Err(PinParseError("not a v1 pin"));
        }
        let vault_id = VaultId(hex_array(fields.next())?);
        let generation = fields
            .next()
            .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|g| g.parse().ok())
            .ok_or(PinParseError("bad generation"))?;
        let header_mac = hex_array(fields.next())?;
        let key_fingerprint = hex_array(fields.next())?;
        if fields.next().is_some() {
            return Err(PinParseError("extra fields"));
        }
        Ok(Self {
            vault_id,
            generation,
            header_mac,
            key_fingerprint,
        })
    }
}

fn hex_array<const N: usize>(field: Option<&str>) -> Result<[u8; N], PinParseError> {
    let field = field.ok_or(PinParseError("missing field"))?.as_bytes();
    if field.len() != 2 * N {
        return Err(PinParseError("field has the wrong length"));
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(PinParseError("not lowercase hex")),
    };
    let mut out = [0u8; N];
    for (i, pair) in field.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tokvault-pin v1 {} {} ", self.vault_id, self.generation)?;
        write_hex(f, &self.header_mac)?;
        f.write_str(" ")?;
        write_hex(f, &self.key_fingerprint)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(generation: u64, mac: u8, fingerprint: u8) -> Pin {
        Pin {
            vault_id: VaultId([1; 16]),
            generation,
            header_mac: [mac; 32],
            key_fingerprint: [fingerprint; 32],
        }
    }

    #[test]
    fn classification() {
        let stored = pin(5, 1, 9);
        assert_eq!(Pin::classify(None, &stored), PinStatus::New);
        assert_eq!(Pin::classify(Some(&stored), &stored), PinStatus::Same);
        assert_eq!(
            Pin::classify(Some(&stored), &pin(6, 2, 9)),
            PinStatus::Newer { pinned: 5 }
        );
        assert_eq!(
            Pin::classify(Some(&stored), &pin(4, 1, 9)),
            PinStatus::Rollback {
                pinned: 5,
                found: 4
            }
        );
        assert_eq!(
            Pin::classify(Some(&stored), &pin(5, 2, 9)),
            PinStatus::Fork { generation: 5 }
        );
        assert_eq!(
            Pin::classify(Some(&stored), &pin(99, 2, 8)),
            PinStatus::DifferentKey
        );
        let other = Pin {
            vault_id: VaultId([2; 16]),
            ..stored
        };
        assert_eq!(
            Pin::classify(Some(&stored), &other),
            PinStatus::DifferentVault
        );
        assert!(PinStatus::Newer { pinned: 1 }.is_trusted());
        assert!(!PinStatus::Fork { generation: 1 }.is_trusted());
    }

    #[test]
    fn a_header_is_classified_without_the_key() {
        let stored = pin(5, 1, 9);
        let header = |vault_id: [u8; 16], generation: u64| crate::Header {
            vault_id: VaultId(vault_id),
            generation,
            written_at: 0,
            payload_nonce: [0; 24],
            payload_len: 16,
            slots: Vec::new(),
        };
        let classify =
            |h: &crate::Header, mac: u8| Pin::classify_header(Some(&stored), h, &[mac; 32]);
        assert_eq!(
            Pin::classify_header(None, &header([1; 16], 5), &[1; 32]),
            PinStatus::New
        );
        assert_eq!(classify(&header([1; 16], 5), 1), PinStatus::Same);
        assert_eq!(
            classify(&header([1; 16], 5), 2),
            PinStatus::Fork { generation: 5 }
        );
        assert_eq!(
            classify(&header([1; 16], 6), 2),
            PinStatus::Newer { pinned: 5 }
        );
        assert_eq!(
            classify(&header([1; 16], 4), 1),
            PinStatus::Rollback {
                pinned: 5,
                found: 4
            }
        );
        assert_eq!(classify(&header([2; 16], 5), 1), PinStatus::DifferentVault);
    }

    #[test]
    fn debug_shows_the_pin_text() {
        // Found by mutation testing: nothing looked at Debug, which error
        // reports and logs of a rollback refusal use.
        let pin = pin(7, 0xab, 0xcd);
        assert_eq!(format!("{pin:?}"), format!("Pin({pin})"));
        assert!(pin.to_string().starts_with("tokvault-pin v1 01010101"));
    }

    #[test]
    fn text_round_trip_and_rejects() {
        let original = pin(u64::MAX, 0xab, 0x01);
        let text = original.to_string();
        assert_eq!(Pin::parse(&text), Ok(original));
        assert_eq!(Pin::parse(&format!("{text}\n")), Ok(original));
        for bad in [
            String::new(),
            text.replace("v1", "v2"),
            text.replace(' ', "  "),
            format!("{text} extra"),
            text.to_uppercase(),
            text.replacen(&u64::MAX.to_string(), "+5", 1),
            text.replacen(&u64::MAX.to_string(), "18446744073709551616", 1),
            text[..text.len() - 1].to_owned(),
        ] {
            assert!(Pin::parse(&bad).is_err(), "{bad}");
        }
    }
}
