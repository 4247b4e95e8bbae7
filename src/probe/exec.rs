//! `exec`: run a command; exit 0 = up. The member's address is in `GSLBD_ADDRESS`; the command
//! gets a clean environment (no secrets of the server leak into it) and is killed when the
//! probe times out.

use std::net::IpAddr;
use std::process::Stdio;

use super::{Failure, Outcome, down, excerpt, up};

pub async fn probe(command: &[String], addr: IpAddr) -> Outcome {
    let Some((program, args)) = command.split_first() else {
        return down(Failure::Exit, "empty command");
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("GSLBD_ADDRESS", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        // The outer timeout drops this future, which kills the child.
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return down(Failure::Exit, format!("cannot run {program}: {e}")),
    };
    match child.wait_with_output().await {
        Ok(out) if out.status.success() => up("exit 0"),
        Ok(out) => {
            let code = out
                .status
                .code()
                .map_or("a signal".to_string(), |c| c.to_string());
            let said = excerpt(&out.stdout);
            if said.is_empty() {
                down(Failure::Exit, format!("exit {code}"))
            } else {
                down(Failure::Exit, format!("exit {code}: {said}"))
            }
        }
        Err(e) => down(Failure::Other, format!("wait failed: {e}")),
    }
}
