//! Dropping root: gslbd binds its sockets (port 53 needs root or `CAP_NET_BIND_SERVICE`), then
//! becomes `user` for good — groups, group and user, real, effective and saved — before it
//! starts any prober or writes any state. `exec` checks then run as that user too, with a clean
//! environment (`probe::exec`).

use std::ffi::CString;

/// A user's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

/// The ids of `name`, if the user exists.
pub fn lookup(name: &str) -> Option<Ids> {
    let c = CString::new(name).ok()?;
    // SAFETY: passwd is a plain C struct for which all-zero bytes are a valid value.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into `pw` and `buf` (of the length given) and sets `out` to
    // `&pw` on success; nothing is kept past this call but the two integers.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    Some(Ids {
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    })
}

/// Why gslbd could not become its `user:` (it then stops rather than run as root).
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("there is no user {0:?}")]
    NoUser(String),
    #[error("cannot become user {user:?}: not started as root (uid {uid})")]
    NotRoot { user: String, uid: libc::uid_t },
    #[error("{0}: {1}")]
    Call(&'static str, std::io::Error),
    #[error("still able to become root after dropping privileges")]
    RootStays,
}

/// Become `name`. A no-op (with `Ok`) when already running as that user; an error when not
/// root and not that user, or when any step fails (gslbd then stops rather than run as root).
pub fn drop_to(name: &str) -> Result<Ids, PrivilegeError> {
    let ids = lookup(name).ok_or_else(|| PrivilegeError::NoUser(name.to_string()))?;
    // SAFETY: plain syscalls without pointers (setgroups with an empty list).
    unsafe {
        if libc::geteuid() == ids.uid && libc::getuid() == ids.uid {
            return Ok(ids);
        }
        if libc::geteuid() != 0 {
            return Err(PrivilegeError::NotRoot {
                user: name.to_string(),
                uid: libc::geteuid(),
            });
        }
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(PrivilegeError::Call(
                "setgroups",
                std::io::Error::last_os_error(),
            ));
        }
        if libc::setresgid(ids.gid, ids.gid, ids.gid) != 0 {
            return Err(PrivilegeError::Call(
                "setresgid",
                std::io::Error::last_os_error(),
            ));
        }
        if libc::setresuid(ids.uid, ids.uid, ids.uid) != 0 {
            return Err(PrivilegeError::Call(
                "setresuid",
                std::io::Error::last_os_error(),
            ));
        }
        // Root cannot come back.
        if libc::setuid(0) == 0 {
            return Err(PrivilegeError::RootStays);
        }
    }
    Ok(ids)
}
