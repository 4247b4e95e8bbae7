//! Checking gslbd against a systemd unit's sandbox: the unit's settings merged as systemd merges
//! them, its system call groups as `systemd-analyze` lists them, and what an `strace -f` log
//! says gslbd did. Used by tests/systemd_unit.rs (the unit) and tests/xdp.rs (its XDP drop-in).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

// ---- the unit ----

/// The values of every `key=` line of a unit, in order.
pub fn directives<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// A list setting of allow-list and `~` deny-list lines, merged as systemd merges
/// `SystemCallFilter=` and `RestrictAddressFamilies=` (systemd.exec(5)): the first line decides
/// whether the set holds what is allowed or what is denied; a later line of the same kind adds
/// to the set, of the other kind removes from it; an empty value starts over.
#[derive(Debug)]
pub struct ListSetting {
    allow_list: bool,
    set: BTreeSet<String>,
}

impl ListSetting {
    /// `implicit`: what an allow list holds from the start (systemd adds `@default` to a
    /// system call allow list); `expand`: the names one word stands for.
    pub fn parse(
        values: &[&str],
        implicit: &[&str],
        expand: &dyn Fn(&str) -> Result<BTreeSet<String>, String>,
    ) -> Result<Option<ListSetting>, String> {
        let mut setting: Option<ListSetting> = None;
        for value in values {
            if value.is_empty() {
                setting = None;
                continue;
            }
            let (deny, words) = match value.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, *value),
            };
            if setting.is_none() {
                let mut set = BTreeSet::new();
                if !deny {
                    for w in implicit {
                        set.extend(expand(w)?);
                    }
                }
                setting = Some(ListSetting {
                    allow_list: !deny,
                    set,
                });
            }
            let s = setting.as_mut().expect("set above");
            for word in words.split_whitespace() {
                // `name:ERRNO` (a deny-list entry's own error number) names the same calls
                let name = word.split_once(':').map_or(word, |(n, _)| n);
                let names = expand(name)?;
                if deny != s.allow_list {
                    s.set.extend(names);
                } else {
                    s.set.retain(|n| !names.contains(n));
                }
            }
        }
        Ok(setting)
    }

    pub fn allows(&self, name: &str) -> bool {
        self.set.contains(name) == self.allow_list
    }
}

/// systemd's system call groups as `systemd-analyze syscall-filter` lists them: each group's
/// calls and the groups it includes.
pub struct Groups(HashMap<String, Vec<String>>);

impl Groups {
    pub fn load() -> Groups {
        let o = Command::new("systemd-analyze")
            .arg("syscall-filter")
            .output()
            .expect("run systemd-analyze syscall-filter");
        assert!(
            o.status.success(),
            "systemd-analyze syscall-filter failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let mut groups: HashMap<String, Vec<String>> = HashMap::new();
        let mut current: Option<String> = None;
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let item = line.trim();
            if item.is_empty() {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                // "@group" opens a group; anything else at the margin (the closing list of
                // calls in no group, commented out) closes it
                current = item.starts_with('@').then(|| item.to_string());
                if let Some(g) = &current {
                    groups.entry(g.clone()).or_default();
                }
            } else if let Some(g) = &current
                && !item.starts_with('#')
            {
                groups
                    .get_mut(g)
                    .expect("opened above")
                    .push(item.to_string());
            }
        }
        assert!(
            groups.contains_key("@system-service") && groups.contains_key("@default"),
            "systemd-analyze syscall-filter listed no @system-service or @default"
        );
        Groups(groups)
    }

    /// The calls `word` names: those of a group and of the groups it includes, or one call.
    pub fn expand(&self, word: &str) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![word.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(w) = todo.pop() {
            if !w.starts_with('@') {
                out.insert(w);
            } else if seen.insert(w.clone()) {
                let members = self
                    .0
                    .get(&w)
                    .ok_or_else(|| format!("{w} is not a system call group of this systemd"))?;
                todo.extend(members.iter().cloned());
            }
        }
        Ok(out)
    }
}

/// The unit's system call filter (`None`: it has none and allows everything).
pub fn syscall_filter(unit: &str, groups: &Groups) -> Option<ListSetting> {
    ListSetting::parse(&directives(unit, "SystemCallFilter"), &["@default"], &|w| {
        groups.expand(w)
    })
    .unwrap_or_else(|e| panic!("SystemCallFilter=: {e}"))
}

/// The unit's `RestrictAddressFamilies=` (`None`: it has none and allows every family).
pub fn address_families(unit: &str) -> Option<ListSetting> {
    ListSetting::parse(&directives(unit, "RestrictAddressFamilies"), &[], &|w| {
        Ok(BTreeSet::from([w.to_string()]))
    })
    .unwrap_or_else(|e| panic!("RestrictAddressFamilies=: {e}"))
}

/// The calls among `calls` that the unit's `SystemCallFilter=` does not allow.
pub fn blocked<'a>(
    unit: &str,
    groups: &Groups,
    calls: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let Some(filter) = syscall_filter(unit, groups) else {
        return Vec::new();
    };
    let mut v: Vec<String> = calls
        .into_iter()
        .filter(|c| !filter.allows(c))
        .map(str::to_string)
        .collect();
    v.sort();
    v.dedup();
    v
}

// ---- strace logs ----

/// The system calls of an `strace -f` log: (name, the line), in order.
pub fn calls_of(trace: &str) -> Vec<(&str, &str)> {
    trace
        .lines()
        .filter_map(|line| {
            let rest = match line.split_once(' ') {
                Some((pid, rest)) if pid.bytes().all(|b| b.is_ascii_digit()) => rest.trim_start(),
                _ => line,
            };
            // "<... futex resumed>", "--- SIGHUP ...", "+++ exited ..." are not calls
            let (name, _) = rest.split_once('(')?;
            (!name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
            .then_some((name, rest))
        })
        .collect()
}

/// The quoted strings among a call's arguments (strace prints paths in full).
pub fn strings_of(call: &str) -> Vec<String> {
    let args = call.rsplit_once(") = ").map_or(call, |(a, _)| a);
    let mut out = Vec::new();
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => s.extend(chars.next()),
                '"' => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// The paths a call creates, truncates, opens for writing, renames or removes; relative ones
/// resolved against `cwd`, or shown as they are when relative to another directory's fd.
pub fn written_by(name: &str, call: &str, cwd: &Path) -> Vec<String> {
    let writes = match name {
        "open" | "openat" | "openat2" => ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
            .iter()
            .any(|f| call.contains(f)),
        "creat" | "mkdir" | "mkdirat" | "rename" | "renameat" | "renameat2" | "unlink"
        | "unlinkat" | "rmdir" | "link" | "linkat" | "symlink" | "symlinkat" | "truncate"
        | "mknod" | "mknodat" => true,
        _ => false,
    };
    if !writes {
        return Vec::new();
    }
    let at_call = matches!(
        name,
        "openat"
            | "openat2"
            | "mkdirat"
            | "renameat"
            | "renameat2"
            | "unlinkat"
            | "linkat"
            | "symlinkat"
            | "mknodat"
    );
    let at_cwd = !at_call || call.contains("AT_FDCWD");
    strings_of(call)
        .into_iter()
        .map(|p| {
            if p.starts_with('/') {
                p
            } else if at_cwd {
                cwd.join(p).display().to_string()
            } else {
                format!("{p} (relative to a directory fd: {call})")
            }
        })
        .collect()
}

/// The address family of a socket() or socketpair() call.
pub fn family_of(name: &str, call: &str) -> Option<String> {
    if name != "socket" && name != "socketpair" {
        return None;
    }
    let args = call.split_once('(')?.1;
    Some(args.split([',', ')']).next()?.trim().to_string())
}

/// The PID of `parent`'s child named `comm` once it runs (strace's command after its exec: before
/// that, and strace's own short-lived children that probe ptrace at start, are named "strace").
pub fn child_of(parent: u32, comm: &str) -> Option<i32> {
    let parent = parent.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            // "PID (COMM) STATE PPID ...": the command name may hold spaces and parentheses
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let (head, rest) = s.rsplit_once(')')?;
                    let name = head.split_once('(')?.1;
                    Some(name == comm && rest.split_whitespace().nth(1)? == parent)
                })
                .unwrap_or(false)
        })
}

/// Whether `tools` are installed. If one is not, the caller skips its test (`false`), unless
/// the environment variable `required` is set, as `.ci/run` sets it: then the test fails.
pub fn installed(tools: &[&str], required: &str) -> bool {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            assert!(
                std::env::var_os(required).is_none(),
                "{required} is set, but {tool} is not installed"
            );
            eprintln!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}
