//! `tokvault verify`: opens the vault and checks every record; exit 0 or 5.

use vault_oauth::RefreshRequest;

use crate::context::{Context, block_on};
use crate::error::{CliError, Exit, Result};
use crate::ui::output::print;

pub(crate) fn exec(ctx: &Context) -> Result<Exit> {
    let session = ctx.session()?;
    let vault = block_on(session.open())??;
    let mut problems = Vec::new();
    for record in vault.records() {
        if let Err(problem) = RefreshRequest::from_record(record) {
            problems.push(format!("{}: {problem}", record.name));
        }
    }
    if !problems.is_empty() {
        return Err(CliError::untrusted(format!(
            "{}: {}",
            session.location(),
            problems.join("; ")
        )));
    }
    print(&format!(
        "{}: ok, {} record(s), generation {}",
        session.location(),
        vault.records().len(),
        vault.generation()
    ))
}
