//! Token files that arrive encrypted with stock `age -r` (binary or `-a`
//! armored) to the server's recipient: decrypted in memory, into a
//! zeroizing buffer, with the identities the vault is unlocked with. Only
//! files for a recipient are taken: a passphrase (`age -p`) would have to
//! be typed on the server, and is refused with what to do instead.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::EngineError;

/// The first line of a binary age file of any version.
const BINARY_PREFIX: &[u8] = b"age-encryption.org/";
/// The first line of a binary age file of the version age reads today.
const BINARY_V1: &[u8] = b"age-encryption.org/v1\n";
/// The first line of an armored age file (`age -a`).
const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// The most plaintext an age input may hold: what any input may.
const MAX_PLAINTEXT: usize = vault_format::MAX_PLAINTEXT_LEN;

/// Whether `bytes` are an age file, binary or armored. Leading whitespace
/// before the armor is allowed, as age's own armor reader allows it
/// nowhere else.
pub fn is_age_file(bytes: &[u8]) -> bool {
    bytes.starts_with(BINARY_PREFIX) || armored(bytes).is_some()
}

/// The armored file without the whitespace that may precede it.
fn armored(bytes: &[u8]) -> Option<&[u8]> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    bytes[start..]
        .starts_with(ARMOR_BEGIN)
        .then(|| &bytes[start..])
}

/// Why an age input cannot be decrypted. Never holds any of the plaintext.
#[derive(Debug)]
#[non_exhaustive]
pub enum AgeInputError {
    /// No age identity was given or found: only a passphrase, or nothing.
    NoIdentity {
        /// The input, for messages.
        input: String,
    },
    /// None of the identities matches the file's recipients.
    OtherRecipient {
        /// The input, for messages.
        input: String,
        /// The recipients of the identities that were tried (public).
        recipients: Vec<String>,
    },
    /// The file is encrypted with a passphrase (`age -p`).
    Passphrase {
        /// The input, for messages.
        input: String,
    },
    /// A version of the age format this build does not read.
    UnknownVersion {
        /// The input, for messages.
        input: String,
    },
    /// The file is damaged or truncated: a header, a MAC or a chunk that
    /// does not check.
    Damaged {
        /// The input, for messages.
        input: String,
    },
    /// The plaintext is larger than any token file or vault.
    TooLarge {
        /// The input, for messages.
        input: String,
    },
}

impl fmt::Display for AgeInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoIdentity { input } => write!(
                f,
                "{input} is an age file, and only an age identity decrypts it: give the \
                 identity the vault is unlocked with (-i PATH, or the default \
                 identity.txt); a vault passphrase does not decrypt age files"
            ),
            Self::OtherRecipient { input, recipients } => {
                write!(
                    f,
                    "{input} was encrypted to a different recipient than this server's \
                     identity, which cannot decrypt it. On the laptop, encrypt the token \
                     file to the server's recipient: "
                )?;
                match recipients.as_slice() {
                    [one] => write!(f, "`age -r {one} -o FILE.age FILE`"),
                    [] => write!(
                        f,
                        "`age -r RECIPIENT -o FILE.age FILE`, with the recipient `tokvault \
                         keygen` printed for this server (the `# public key:` line of its \
                         identity file; `tokvault inspect` lists the vault's recipients)"
                    ),
                    many => write!(
                        f,
                        "`age -r RECIPIENT -o FILE.age FILE`, with one of {}",
                        many.join(", ")
                    ),
                }
            }
            Self::Passphrase { input } => write!(
                f,
                "{input} is encrypted with a passphrase (age -p), which tokvault does not \
                 take: on the laptop, encrypt it to the server's recipient instead (`age -r \
                 RECIPIENT -o FILE.age FILE`, RECIPIENT as `tokvault keygen` printed it), or \
                 decrypt it here yourself: `age -d FILE.age | tokvault import --name NAME -`"
            ),
            Self::UnknownVersion { input } => write!(
                f,
                "{input} is an age file of a version this tokvault does not read: encrypt it \
                 with an age that writes age-encryption.org/v1 (any age or rage release)"
            ),
            Self::Damaged { input } => write!(
                f,
                "{input} is a damaged or truncated age file (decryption failed): copy it \
                 again from the laptop, or encrypt the token file again"
            ),
            Self::TooLarge { input } => write!(
                f,
                "{input} decrypts to more than 64 MiB; that is no token file or vault"
            ),
        }
    }
}

impl std::error::Error for AgeInputError {}

impl From<AgeInputError> for EngineError {
    fn from(error: AgeInputError) -> Self {
        EngineError::failure(error.to_string())
    }
}

/// Decrypts the age file `bytes` (named `input` in messages) with
/// `identities`, whose recipients `recipients` gives (asked only for the
/// message when none matches). The plaintext is only ever in zeroizing buffers.
pub fn decrypt(
    bytes: &[u8],
    input: &str,
    identities: &[&dyn age::Identity],
    recipients: &dyn Fn() -> Vec<String>,
) -> Result<Zeroizing<Vec<u8>>, AgeInputError> {
    let input = input.to_owned();
    let bytes = armored(bytes).unwrap_or(bytes);
    if !bytes.starts_with(ARMOR_BEGIN) && !bytes.starts_with(BINARY_V1) {
        return Err(AgeInputError::UnknownVersion { input });
    }
    let decryptor = match age::Decryptor::new_buffered(age::armor::ArmoredReader::new(bytes)) {
        Ok(decryptor) => decryptor,
        Err(age::DecryptError::UnknownFormat) => {
            return Err(AgeInputError::UnknownVersion { input });
        }
        Err(_) => return Err(AgeInputError::Damaged { input }),
    };
    if decryptor.is_scrypt() {
        return Err(AgeInputError::Passphrase { input });
    }
    if identities.is_empty() {
        return Err(AgeInputError::NoIdentity { input });
    }
    let reader = match decryptor.decrypt(identities.iter().copied()) {
        Ok(reader) => reader,
        Err(age::DecryptError::NoMatchingKeys) => {
            return Err(AgeInputError::OtherRecipient {
                input,
                recipients: recipients(),
            });
        }
        Err(_) => return Err(AgeInputError::Damaged { input }),
    };
    // The plaintext is shorter than the ciphertext: one allocation.
    match crate::fsio::read_capped(reader, MAX_PLAINTEXT, bytes.len()) {
        Ok(Some(plaintext)) => Ok(plaintext),
        Ok(None) => Err(AgeInputError::TooLarge { input }),
        Err(_) => Err(AgeInputError::Damaged { input }),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const PLAINTEXT: &[u8] = br#"{"refresh_token":"rt-canary"}"#;

    fn encrypt(recipient: &age::x25519::Recipient, armor: bool) -> Vec<u8> {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .expect("recipients");
        let format = if armor {
            age::armor::Format::AsciiArmor
        } else {
            age::armor::Format::Binary
        };
        let mut out = Vec::new();
        let armored = age::armor::ArmoredWriter::wrap_output(&mut out, format).expect("armor");
        let mut writer = encryptor.wrap_output(armored).expect("wrap");
        writer.write_all(PLAINTEXT).expect("write");
        writer.finish().and_then(|a| a.finish()).expect("finish");
        out
    }

    fn open(bytes: &[u8], identity: &age::x25519::Identity) -> Result<Vec<u8>, AgeInputError> {
        let identities: [&dyn age::Identity; 1] = [identity];
        decrypt(bytes, "token.json.age", &identities, &|| {
            vec!["age1server".to_owned()]
        })
        .map(|plaintext| plaintext.to_vec())
    }

    #[test]
    fn binary_and_armored_files_decrypt_with_the_identity() {
        let identity = age::x25519::Identity::generate();
        for armor in [false, true] {
            let file = encrypt(&identity.to_public(), armor);
            assert!(is_age_file(&file), "detected (armor: {armor})");
            assert_eq!(open(&file, &identity).expect("decrypted"), PLAINTEXT);
        }
        let mut padded = b"\n  ".to_vec();
        padded.extend(encrypt(&identity.to_public(), true));
        assert!(is_age_file(&padded));
        assert_eq!(open(&padded, &identity).expect("decrypted"), PLAINTEXT);
        assert!(!is_age_file(PLAINTEXT));
        assert!(!is_age_file(&vault_format::MAGIC));
    }

    #[test]
    fn another_recipient_names_the_server_s_and_shows_no_plaintext() {
        let file = encrypt(&age::x25519::Identity::generate().to_public(), false);
        let error = open(&file, &age::x25519::Identity::generate()).expect_err("other");
        assert!(matches!(error, AgeInputError::OtherRecipient { .. }));
        let text = error.to_string();
        assert!(text.contains("age -r age1server"), "{text}");
        assert!(!text.contains("canary"), "{text}");
    }

    #[test]
    fn a_passphrase_file_is_refused_before_any_work() {
        let encryptor = age::Encryptor::with_user_passphrase("pass".to_owned().into());
        let mut file = Vec::new();
        let mut writer = encryptor.wrap_output(&mut file).expect("wrap");
        writer.write_all(PLAINTEXT).expect("write");
        writer.finish().expect("finish");
        let error = open(&file, &age::x25519::Identity::generate()).expect_err("scrypt");
        assert!(matches!(error, AgeInputError::Passphrase { .. }), "{error}");
        assert!(error.to_string().contains("age -d"), "{error}");
    }

    #[test]
    fn no_identity_is_named_as_such() {
        let identity = age::x25519::Identity::generate();
        let file = encrypt(&identity.to_public(), false);
        let error = decrypt(&file, "stdin", &[], &Vec::new).expect_err("no identity");
        assert!(matches!(error, AgeInputError::NoIdentity { .. }), "{error}");
    }

    #[test]
    fn truncated_flipped_and_unknown_files_are_refused() {
        let identity = age::x25519::Identity::generate();
        for armor in [false, true] {
            let file = encrypt(&identity.to_public(), armor);
            for cut in [1, 10, file.len() / 2, file.len() - 20, file.len() - 3] {
                let error = open(&file[..cut], &identity).expect_err("truncated");
                assert!(
                    matches!(
                        error,
                        AgeInputError::Damaged { .. } | AgeInputError::UnknownVersion { .. }
                    ),
                    "cut at {cut}: {error}"
                );
            }
            if !armor {
                let mut flipped = file.clone();
                let last = flipped.len() - 1;
                flipped[last] ^= 1;
                let error = open(&flipped, &identity).expect_err("flipped");
                assert!(matches!(error, AgeInputError::Damaged { .. }), "{error}");
            }
        }
        let error = open(b"age-encryption.org/v2\n", &identity).expect_err("v2");
        assert!(
            matches!(error, AgeInputError::UnknownVersion { .. }),
            "{error}"
        );
    }
}
