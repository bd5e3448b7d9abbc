//! `accord keys generate|show`.

use std::path::{Path, PathBuf};

use accord_trust::{PublicKey, SecretKey};
use anyhow::{Context, Result, bail};

use crate::cli::KeysCommand;
use crate::files::write_atomic;
use crate::passphrase;

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Generate {
            out,
            passphrase,
            force,
        } => {
            let pass = passphrase::new(&passphrase, &out.display().to_string())?;
            let public = generate(&out, &pass, force)?;
            println!("wrote {} and {}", out.display(), pub_path(&out).display());
            println!("key id {}", public.id());
            Ok(())
        }
        KeysCommand::Show {
            file,
            passphrase,
            json,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let public = if text.contains("PRIVATE KEY") {
                let pass = passphrase::existing(&passphrase, &file.display().to_string())?;
                SecretKey::from_encrypted_pem(&text, &pass, &file.display().to_string())?
                    .public()
                    .clone()
            } else {
                PublicKey::from_pem(&text, &file.display().to_string())?
            };
            if json {
                let v = serde_json::json!({
                    "keyid": public.id().as_str(),
                    "keytype": "ed25519",
                    "public": hex::encode(public.raw()),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("key id  {}", public.id());
                println!("public  {}", hex::encode(public.raw()));
                print!("{}", public.to_pem());
            }
            Ok(())
        }
    }
}

/// `FILE.pub` beside `FILE`.
pub fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Generates a key, writes `out` (0600, encrypted) and `out.pub`.
pub fn generate(out: &Path, pass: &str, force: bool) -> Result<PublicKey> {
    let pub_out = pub_path(out);
    if !force && (out.exists() || pub_out.exists()) {
        bail!(
            "{} already exists; pass --force to replace it",
            out.display()
        );
    }
    let key = SecretKey::generate()?;
    write_atomic(out, key.to_encrypted_pem(pass)?.as_bytes(), true)?;
    write_atomic(&pub_out, key.public().to_pem().as_bytes(), false)?;
    Ok(key.public().clone())
}

/// Loads a private key for signing.
pub fn load_secret(path: &Path, pass: &crate::cli::PassphraseArgs) -> Result<SecretKey> {
    let p = passphrase::existing(pass, &path.display().to_string())?;
    Ok(SecretKey::read(path, &p)?)
}
