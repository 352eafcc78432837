//! `tokvault inspect`: the header, with no key; whether the local pin
//! agrees.

use serde_json::json;
use vault_format::{PinStatus, Slot};

use crate::context::{Context, block_on};
use crate::error::{Exit, Result};
use crate::ui::output::print;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSON output
    #[arg(long)]
    json: bool,
}

pub(crate) fn exec(ctx: &Context, args: &Args) -> Result<Exit> {
    let session = ctx.session_without_keys()?;
    let inspection = block_on(session.inspect())??;
    let (header, size) = (&inspection.header, inspection.file_size);
    let location = session.location();
    let pin = pin_text(inspection.pin);
    if args.json {
        let slots: Vec<serde_json::Value> = header
            .slots
            .iter()
            .map(|slot| match slot {
                Slot::Age(age) => json!({"kind": "age", "recipient": age.recipient}),
                Slot::Passphrase(p) => json!({"kind": "passphrase", "kdf": "argon2id", "memory_kib": p.params.memory_kib, "iterations": p.params.iterations, "parallelism": p.params.parallelism}),
                _ => json!({"kind": "unknown"}),
            })
            .collect();
        return print(
            &serde_json::to_string_pretty(&json!({
                "format_version": vault_format::FORMAT_VERSION,
                "vault_id": header.vault_id.to_string(),
                "generation": header.generation,
                "written_at": header.written_at,
                "file_size": size,
                "payload_size": header.payload_len,
                "slots": slots,
                "pin": pin,
            }))
            .unwrap_or_default(),
        );
    }
    let mut out = format!(
        "file:        {location}\nformat:      tokvault v{}\nvault id:    {}\ngeneration:  {}\nwritten at:  {}\nsize:        {} bytes (payload {} bytes)\npin:         {pin}\nslots:\n",
        vault_format::FORMAT_VERSION,
        header.vault_id,
        header.generation,
        vault_oauth::rfc3339(header.written_at),
        size,
        header.payload_len,
    );
    for slot in &header.slots {
        match slot {
            Slot::Age(age) => out.push_str(&format!("  age         {}\n", age.recipient)),
            Slot::Passphrase(p) => out.push_str(&format!("  passphrase  {}\n", p.params)),
            _ => out.push_str("  unknown\n"),
        }
    }
    print(&out)
}

/// How the header relates to the pin, in words (the key is not compared).
fn pin_text(status: PinStatus) -> String {
    match status {
        PinStatus::New => "none (not opened here before)".to_owned(),
        PinStatus::DifferentVault => "DIFFERENT VAULT than the one pinned for this path".to_owned(),
        PinStatus::Newer { pinned } => format!("newer than the pinned generation {pinned}"),
        PinStatus::Rollback { pinned, .. } => {
            format!("OLDER than the pinned generation {pinned}: rollback")
        }
        PinStatus::Same => "agrees".to_owned(),
        PinStatus::Fork { generation } => {
            format!("DIFFERS from the pinned generation {generation}: fork")
        }
        _ => "does not match its rollback pin".to_owned(),
    }
}
