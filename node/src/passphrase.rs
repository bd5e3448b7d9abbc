//! Passphrases come from an environment variable or a terminal prompt, never from argv.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use crate::cli::PassphraseArgs;

/// The passphrase for an existing key.
pub fn existing(args: &PassphraseArgs, what: &str) -> Result<String> {
    if let Ok(p) = std::env::var(&args.passphrase_env) {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("passphrase for {what}: "))
            .context("could not read the passphrase from the terminal");
    }
    bail!(
        "no passphrase for {what}: set {} or run in a terminal to be prompted",
        args.passphrase_env
    )
}

/// A passphrase for a new key (asked twice on a terminal).
pub fn new(args: &PassphraseArgs, what: &str) -> Result<String> {
    if let Ok(p) = std::env::var(&args.passphrase_env) {
        if p.is_empty() {
            bail!("{} is empty; a key needs a passphrase", args.passphrase_env);
        }
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password(format!("new passphrase for {what}: "))?;
        let b = rpassword::prompt_password("repeat it: ")?;
        if a != b {
            bail!("the passphrases differ");
        }
        if a.is_empty() {
            bail!("a key needs a non-empty passphrase");
        }
        return Ok(a);
    }
    bail!(
        "no passphrase for {what}: set {} or run in a terminal to be prompted",
        args.passphrase_env
    )
}
