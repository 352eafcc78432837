//! Everything that talks to the person at the terminal: standard output
//! and the renderings of records ([`output`]), passphrase prompts
//! ([`prompt`]), and the browser, the login prompts and the pasted line
//! ([`login`]). Commands decide; these only show and ask.

pub(crate) mod login;
pub(crate) mod output;
pub(crate) mod prompt;
