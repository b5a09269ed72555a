//! Printing: JSON documents and padded text tables.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::admin::AdminError;

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// Prints `value` as JSON with `--output json`, else as `text` writes it.
pub(crate) fn print_as<T: Serialize + ?Sized>(
    output: crate::Output,
    value: &T,
    text: impl FnOnce(&T),
) -> anyhow::Result<()> {
    match output {
        crate::Output::Json => print_json(value),
        crate::Output::Text => {
            text(value);
            Ok(())
        }
    }
}

/// A table with a header row; every column but the last is padded to its
/// widest cell and separated by two spaces, trailing blanks trimmed.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `  type[name] status (N ms): message` (no `: message` when it is empty):
/// one resource of a report, as `envoys show` and `reports show` print it.
pub(crate) fn resource_line(label: &str, status: &str, duration_ms: u64, message: &str) -> String {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    };
    format!("  {label} {status} ({duration_ms} ms){message}\n")
}

/// Makes a closed stdout end the process quietly with status 0.
///
/// Rust ignores SIGPIPE, so writing to a pipe whose reader has gone
/// (`vigocli envoys list | head -1`) fails with `EPIPE`, and `print!`
/// panics on it. Restoring SIGPIPE's default action would need `unsafe`;
/// instead this panic hook recognises that one panic and exits as a
/// SIGPIPE'd filter would, without a message (as ripgrep does). Every other
/// panic goes to the default hook.
pub(crate) fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether `error` is a write to a stdout whose reader has gone.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|kind| kind == std::io::ErrorKind::BrokenPipe)
    })
}

/// Before secret values are printed: when stdout is a regular file
/// (`vigocli catalog NAME --reveal > file`), makes it private (0600) and
/// says so on stderr, or refuses when that is not possible. A shell creates
/// the file with the umask's mode, usually world-readable.
pub(crate) fn make_stdout_file_private() -> anyhow::Result<()> {
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("inspecting standard output")?;
    let file = std::fs::File::from(fd);
    let metadata = file.metadata().context("inspecting standard output")?;
    if !metadata.is_file() {
        return Ok(());
    }
    if metadata.permissions().mode() & 0o7777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .context(
                "standard output is a file, and making it private (mode 0600) before writing secret values failed; write to a file you own",
            )?;
    }
    eprintln!(
        "note: standard output is a file; its mode is now 0600 because it holds secret values"
    );
    Ok(())
}

/// Turns an admin API failure into the one-line error the operator sees.
pub(crate) fn call<T>(result: Result<T, AdminError>) -> anyhow::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(AdminError::Unreachable { addr, cause }) => {
            bail!("server not reachable at {addr}: {cause}")
        }
        Err(AdminError::Refused {
            body: Some(body), ..
        }) => bail!("{}", body.message),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell_and_the_last_is_not() {
        let out = table(["A", "LONGER", "Z"], &[["xyz", "1", "end"], ["q", "", ""]]);
        assert_eq!(out, "A    LONGER  Z\nxyz  1       end\nq\n");
    }
}
