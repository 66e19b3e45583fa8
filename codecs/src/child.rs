//! External tools run as child processes with a time limit (poppler for PDF pages, adb for
//! phones): a crash or a hang in the tool costs one call, not the process. Its output is read
//! while it runs, on threads, since a page image is larger than a pipe's buffer.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished tool left.
pub struct ChildOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a tool gave no output.
#[derive(Debug)]
pub enum ChildError {
    /// The program is not on the PATH.
    NotInstalled,
    Spawn(std::io::Error),
    /// It ran past the limit and was killed.
    TimedOut,
    Wait(std::io::Error),
}

/// Runs `cmd` (stdin closed), killing it after `limit`.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Result<ChildOutput, ChildError> {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ChildError::NotInstalled
        } else {
            ChildError::Spawn(e)
        }
    })?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out_reader = drain(Box::new(child.stdout.take().expect("piped")));
    let err_reader = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::TimedOut);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(ChildError::Wait(e)),
        }
    };
    Ok(ChildOutput {
        success: status.success(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}
