//! Recipient strings accepted in age slots, and their canonical form.

use std::str::FromStr;

/// The kinds of age recipient an age slot may hold in v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecipientKind {
    /// A native age X25519 recipient (`age1…`).
    X25519,
    /// An OpenSSH Ed25519 public key (`ssh-ed25519 AAAA…`).
    SshEd25519,
    /// An OpenSSH RSA public key of at least 2048 bits (`ssh-rsa AAAA…`).
    SshRsa,
}

impl RecipientKind {
    /// The tag of the age stanza this kind of recipient produces.
    pub(crate) fn stanza_tag(self) -> &'static str {
        match self {
            Self::X25519 => "X25519",
            Self::SshEd25519 => "ssh-ed25519",
            Self::SshRsa => "ssh-rsa",
        }
    }
}

/// A parsed recipient: its kind, its canonical string (what the slot
/// stores; SSH comments are dropped) and the age object that wraps keys.
pub(crate) struct ParsedRecipient {
    pub(crate) kind: RecipientKind,
    pub(crate) canonical: String,
    pub(crate) recipient: Box<dyn age::Recipient + Send + Sync>,
}

/// Parses a recipient as `age` accepts it on the command line.
///
/// Returns the canonical string tokvault stores: for SSH keys, the key type
/// and base64 key without the comment. Errors name what was expected.
pub fn canonical_recipient(input: &str) -> Result<(RecipientKind, String), String> {
    parse_recipient(input).map(|parsed| (parsed.kind, parsed.canonical))
}

pub(crate) fn parse_recipient(input: &str) -> Result<ParsedRecipient, String> {
    let input = input.trim();
    if input.starts_with("age1") {
        if let Ok(recipient) = age::x25519::Recipient::from_str(input) {
            return Ok(ParsedRecipient {
                kind: RecipientKind::X25519,
                canonical: recipient.to_string(),
                recipient: Box::new(recipient),
            });
        }
        return Err(
            "not a valid age X25519 recipient (age1 followed by 58 bech32 characters); \
                    plugin, hardware-token and post-quantum recipients are not supported"
                .into(),
        );
    }
    if input.starts_with("ssh-") {
        return match age::ssh::Recipient::from_str(input) {
            Ok(recipient) => {
                let kind = match recipient {
                    age::ssh::Recipient::SshEd25519(..) => RecipientKind::SshEd25519,
                    age::ssh::Recipient::SshRsa(..) => RecipientKind::SshRsa,
                };
                Ok(ParsedRecipient {
                    kind,
                    canonical: recipient.to_string(),
                    recipient: Box::new(recipient),
                })
            }
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooSmall) => {
                Err("the ssh-rsa key is smaller than 2048 bits".into())
            }
            Err(age::ssh::ParseRecipientKeyError::RsaModulusTooLarge) => {
                Err("the ssh-rsa key is larger than age supports".into())
            }
            Err(age::ssh::ParseRecipientKeyError::Unsupported(key_type)) => Err(format!(
                "SSH key type {key_type} is not supported (use ssh-ed25519 or ssh-rsa)"
            )),
            Err(_) => Err(
                "not a valid SSH public key (expected ssh-ed25519 AAAA… or ssh-rsa AAAA…)".into(),
            ),
        };
    }
    Err("expected an age recipient (age1…) or an SSH public key (ssh-ed25519 …, ssh-rsa …)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x25519_round_trips_and_rejects_garbage() {
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        let (kind, canonical) =
            canonical_recipient(&format!("  {public}\n")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((kind, canonical), (RecipientKind::X25519, public.clone()));
        assert!(canonical_recipient(&public[..public.len() - 1]).is_err());
        assert!(canonical_recipient("age1").is_err());
        assert!(canonical_recipient("").is_err());
        assert!(canonical_recipient("AGE-SECRET-KEY-1").is_err());
        assert!(canonical_recipient("ssh-dss AAAA").is_err());
    }
}
