//! Literate CLI transcripts, in the manner of Radicle's CLI examples: a Markdown file's
//! ```` ```console ```` blocks are commands (`$ accord …`) each followed by the output it
//! must print, and a test runs them in order in one working directory. The README is
//! written this way, so it cannot drift from the binary.
//!
//! Matching, line by line on stdout (trailing spaces ignored):
//! - `[..]` within a line matches any text on that line (ids, hashes, times);
//! - a line `...` matches any number of lines, none included;
//! - every other character is literal.
//!
//! A command must exit 0, unless its expected output's first line is `(exit N)`.
//! An HTML comment `<!-- transcript: NAME -->` before a block names a setup step the test
//! performs before that block (the README says in prose what it stands for).
//!
//! Writing a new transcript: with `ACCORD_TRANSCRIPT_PRINT=1` every step's actual output is
//! printed to stderr (and only exit codes are checked), to copy from.

use std::path::Path;
use std::process::Command;

/// One ```` ```console ```` block.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based line of the opening fence, for error messages.
    pub line: usize,
    /// The `<!-- transcript: NAME -->` directive just before the block, if any.
    pub setup: Option<String>,
    pub steps: Vec<Step>,
}

/// A command and the output it must print.
#[derive(Debug, Clone)]
pub struct Step {
    pub line: usize,
    pub command: String,
    pub exit: i32,
    pub expected: Vec<String>,
}

/// The console blocks of a Markdown document, in order.
pub fn parse(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut setup: Option<String> = None;
    let mut lines = markdown.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if let Some(rest) = t
            .strip_prefix("<!-- transcript:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            setup = Some(rest.trim().to_owned());
            continue;
        }
        if t != "```console" {
            if t.starts_with("```") {
                // Another block between a directive and its console block voids it.
                setup = None;
            }
            continue;
        }
        let mut block = Block {
            line: i + 1,
            setup: setup.take(),
            steps: Vec::new(),
        };
        for (j, l) in lines.by_ref() {
            if l.trim() == "```" {
                break;
            }
            if let Some(cmd) = l.strip_prefix("$ ") {
                block.steps.push(Step {
                    line: j + 1,
                    command: cmd.trim().to_owned(),
                    exit: 0,
                    expected: Vec::new(),
                });
            } else if let Some(step) = block.steps.last_mut() {
                let code = l
                    .trim()
                    .strip_prefix("(exit ")
                    .and_then(|r| r.strip_suffix(')'))
                    .and_then(|n| n.parse().ok());
                match code {
                    Some(n) if step.expected.is_empty() => step.exit = n,
                    _ => step.expected.push(l.trim_end().to_owned()),
                }
            }
        }
        blocks.push(block);
    }
    blocks
}

/// Runs a block's commands with `sh -c` in `dir`, `accord` first on PATH; the first
/// mismatch is returned as a readable diff.
pub fn run(block: &Block, dir: &Path, accord: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let bin_dir = accord.parent().unwrap_or(Path::new("."));
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin_dir.to_path_buf()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs).map_err(|e| e.to_string())?
        }
        None => bin_dir.as_os_str().to_owned(),
    };
    for step in &block.steps {
        let out = Command::new("sh")
            .current_dir(dir)
            .arg("-c")
            .arg(&step.command)
            .env("PATH", &path)
            .envs(env.iter().copied())
            .output()
            .map_err(|e| format!("line {}: cannot run sh: {e}", step.line))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code().unwrap_or(-1);
        let actual: Vec<&str> = stdout.lines().map(str::trim_end).collect();
        let printing = std::env::var_os("ACCORD_TRANSCRIPT_PRINT").is_some();
        if printing {
            eprintln!("$ {}\n{}", step.command, actual.join("\n"));
        }
        if code != step.exit || (!printing && !matches(&step.expected, &actual)) {
            return Err(format!(
                "line {}: $ {}\nexit {code} (expected {})\n--- expected\n{}\n--- actual stdout\n{}\n--- stderr\n{}",
                step.line,
                step.command,
                step.exit,
                step.expected.join("\n"),
                actual.join("\n"),
                stderr
            ));
        }
    }
    Ok(())
}

/// Whether `actual` lines match `expected` (see the module docs).
pub fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(e, a) && matches(rest, more)),
    }
}

/// One line: literal text with `[..]` matching any run of characters.
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    if parts.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !actual.starts_with(first) || actual.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &actual[first.len()..];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn wildcards_match_within_a_line_and_across_lines() {
        assert!(line_matches("key id [..]", "key id 3f2a"));
        assert!(line_matches("[..] of [..]", "3 of 4"));
        assert!(!line_matches("key id [..]", "key 3f2a"));
        assert!(!line_matches("a[..]a", "a"));
        assert!(matches(&owned(&["a", "...", "d"]), &["a", "b", "c", "d"]));
        assert!(matches(&owned(&["a", "...", "d"]), &["a", "d"]));
        assert!(!matches(&owned(&["a", "d"]), &["a", "b", "d"]));
        assert!(!matches(&owned(&["a"]), &["a", "extra"]));
    }

    #[test]
    fn blocks_steps_directives_and_exit_codes_parse() {
        let md = "text\n<!-- transcript: nodes -->\n```console\n$ accord x\nout [..]\n$ accord y\n(exit 1)\nrefused\n```\n```sh\nnot a transcript\n```\n";
        let b = parse(md);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].setup.as_deref(), Some("nodes"));
        assert_eq!(b[0].steps.len(), 2);
        assert_eq!(b[0].steps[0].expected, vec!["out [..]".to_owned()]);
        assert_eq!(b[0].steps[1].exit, 1);
        assert_eq!(b[0].steps[1].expected, vec!["refused".to_owned()]);
    }
}
